"""Webhooks to the host app, as Standard Webhooks says: events as signed HTTP POSTs, sent from an outbox.

- :mod:`.events`: the event types, ``NOTIF_WEBHOOK_EVENTS``, and the body of each event;
- :mod:`.signing`: the secret, the ``webhook-*`` headers and their HMAC-SHA256 signature;
- :mod:`.outbox`: events written as rows in the transaction of the change they report,
  handed to the sender after the commit;
- :mod:`.states`: an event row's states and the moves between them;
- :mod:`.send`: one attempt at one event: sign, POST through the outbound policy, record the
  outcome (sent, retried with backoff, dead-lettered);
- :mod:`.sweep`: the scheduler's pass over events left pending or stuck sending.

The worker's ``webhook`` actor runs :func:`.send.send`; ``notif dlq`` lists, replays and purges
the dead letters (``webhook:<id>``). README › Webhooks documents the contract.
"""
