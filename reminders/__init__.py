"""What to push and when (scans, digests), and the outbox that delivers it reliably."""
