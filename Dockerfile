# dealbot's image: `docker build -t dealbot .`, then `docker run … dealbot serve|worker|<command>`.
# CI has no container runtime and does not build this file; tests/test_deploy.py checks what it
# installs from and runs (see the README's Deploy section).
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/dealbot
# The versions CI tested: the lock first, so this layer is rebuilt only when the lock changes.
COPY requirements.lock /src/
RUN /opt/dealbot/bin/pip install -r /src/requirements.lock
COPY pyproject.toml README.md LICENSE /src/
COPY bot /src/bot
COPY commands /src/commands
COPY wording /src/wording
COPY models /src/models
COPY reminders /src/reminders
COPY adapters /src/adapters
COPY bench /src/bench
# dealbot itself, nothing more: every dependency came from the lock (pip check says if one did not).
RUN /opt/dealbot/bin/pip install --no-deps /src && /opt/dealbot/bin/pip check

FROM python:${PYTHON_VERSION}-slim-bookworm
# A font that draws Chinese, so digests' funnel charts have Chinese labels (commands/charts.py).
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-wqy-zenhei \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/dealbot dealbot \
    && install -d -o dealbot -g dealbot /var/lib/dealbot
COPY --from=build /opt/dealbot /opt/dealbot
COPY deploy/docker-entrypoint.sh /usr/local/bin/dealbot-entrypoint
ENV PATH=/opt/dealbot/bin:$PATH PYTHONUNBUFFERED=1
USER 10001
# Where a SQLite database lands when DEALBOT_DATABASE_URL is not set (mount a volume there).
WORKDIR /var/lib/dealbot
# The build fails unless matplotlib finds the font; its font cache stays in the image.
RUN python -c "from commands.charts import font_for; assert font_for('线索'), 'no CJK font for charts'"
# 8000: the web app (webhooks, /healthz, /metrics); 9100: a worker's /metrics (--metrics-port).
EXPOSE 8000 9100
ENTRYPOINT ["dealbot-entrypoint"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
