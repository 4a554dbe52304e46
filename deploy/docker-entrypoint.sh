#!/bin/sh
# The image's entrypoint. `serve`, `worker` and `run` first bring the schema to this version's head
# under the migration lock (replicas started together migrate once, the others wait and go on),
# then start; any other arguments are a dealbot command run as is (`db upgrade`, `outbox --dead`,
# `config example`, `worker --once` …).
set -eu
case "${1:-}" in
  serve | worker | run) dealbot db upgrade ;;
esac
exec dealbot "$@"
