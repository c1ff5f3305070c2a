"""Delivery: from queued deliveries to the provider.

The last stage of the pipeline feed -> changes -> notifications -> delivery:

- `dispatch`: claims due deliveries with a lease, renders once per group, sends in batches,
  retries with backoff and records every answer in the delivery ledger.
- `mailer`: the mail backends (SendGrid through the official library, the outbox for
  development) and the request shapes they take.
- `mailheaders`: header values and addresses that are safe to put in a mail.
- `wake`: wake on work (dispatch starts at once when deliveries are queued).
"""
