"""The ceiling for the throughput benchmark: a Dramatiq actor that does nothing.

Run as `dramatiq bench.noop_actors` with the same --processes/--threads as notif's worker,
on the same Redis; its message rate is the most any actor could do on this machine.
"""
import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

broker = RedisBroker(url=os.environ["REDIS_URL"], namespace=os.environ["BENCH_NAMESPACE"])
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="bench.noop", actor_name="noop", max_retries=0)
def noop(messages):
    pass
