#!/usr/bin/env python3
"""kafka-python against a running Tidemark broker.

Usage: kafka_python_client.py BOOTSTRAP TOPIC MODE [SETTING=VALUE ...]

The topic must exist with 2 partitions and be empty. MODE is
  explicit  - a producer with acks='all' and enable_idempotence=False;
  defaults  - a producer with kafka-python's defaults (idempotence on since 3.0);
  refused   - expects the login to fail: prints REFUSED and the class of the
              error kafka-python met (SaslAuthenticationFailedError for a
              wrong password), and produces nothing.
Each SETTING=VALUE is a keyword of kafka-python's clients, given to the
producer and the consumer: security_protocol=SASL_SSL, ssl_cafile=...,
ssl_certfile=..., ssl_keyfile=..., sasl_mechanism=SCRAM-SHA-512,
sasl_plain_username=..., sasl_plain_password=...

Produces keyed records (with headers and one null key) to both partitions,
checks the offsets the producer got back, then consumes everything with an
assigned consumer and checks keys, values, headers, offsets, and the
beginning/end offsets and offsets_for_times answers. Prints OK on success;
any failure raises (non-zero exit, traceback on stderr).
"""
import logging
import sys
import time

import kafka.errors
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

TIMEOUT_S = 30


def security_settings(args):
    settings = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep:
            sys.exit("expected SETTING=VALUE, got %r" % arg)
        settings[key] = value
    return settings


class AuthenticationFailures(logging.Handler):
    """kafka-python logs why a connection failed, with the error itself as
    the record's argument, and then only says it could not bootstrap."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def emit(self, record):
        for arg in record.args or ():
            if isinstance(arg, kafka.errors.SaslAuthenticationFailedError):
                self.seen.append(type(arg).__name__)


def expect_refusal(bootstrap, security):
    failures = AuthenticationFailures()
    logging.getLogger("kafka").addHandler(failures)
    try:
        # Frequent attempts: each one that fails shows why.
        producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            bootstrap_timeout_ms=10000,
            reconnect_backoff_max_ms=200,
            **security,
        )
    except kafka.errors.KafkaError as error:
        assert failures.seen, "refused without an authentication error: %r" % error
        print("REFUSED %s" % failures.seen[0])
        return
    producer.close(timeout=1)
    sys.exit("the login was accepted")


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    bootstrap, topic, mode = sys.argv[1:4]
    security = security_settings(sys.argv[4:])
    if mode == "explicit":
        producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=False,
            linger_ms=5,
            request_timeout_ms=10000,
            **security,
        )
    elif mode == "defaults":
        producer = KafkaProducer(bootstrap_servers=bootstrap, **security)
    elif mode == "refused":
        expect_refusal(bootstrap, security)
        return
    else:
        sys.exit("unknown mode %r" % mode)

    base_ts = int(time.time() * 1000) - 60000
    sent = []  # (partition, key, value, headers, timestamp)
    for i in range(30):
        partition = i % 2
        key = None if i == 7 else ("key-%d" % (i % 5)).encode()
        value = ("kafka-python %s %d" % (mode, i)).encode()
        headers = [("i", str(i).encode())] if i % 3 == 0 else []
        sent.append((partition, key, value, headers, base_ts + i * 100))

    futures = [
        producer.send(topic, value=v, key=k, headers=h, partition=p, timestamp_ms=ts)
        for (p, k, v, h, ts) in sent
    ]
    producer.flush(timeout=TIMEOUT_S)
    next_offset = {0: 0, 1: 0}
    for n, future in enumerate(futures):
        metadata = future.get(timeout=TIMEOUT_S)
        partition = sent[n][0]
        assert metadata.topic == topic, metadata
        assert metadata.partition == partition, (n, metadata)
        assert metadata.offset == next_offset[partition], (
            "record %d: offset %d, expected %d" % (n, metadata.offset, next_offset[partition])
        )
        next_offset[partition] += 1
    producer.close(timeout=TIMEOUT_S)

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=20000,
        **security,
    )
    tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)

    begins = consumer.beginning_offsets(tps)
    ends = consumer.end_offsets(tps)
    assert begins == {tps[0]: 0, tps[1]: 0}, begins
    assert ends == {tps[0]: 15, tps[1]: 15}, ends

    got = {0: [], 1: []}
    deadline = time.time() + TIMEOUT_S
    while len(got[0]) + len(got[1]) < len(sent):
        assert time.time() < deadline, "timed out consuming: %r" % {
            p: len(v) for p, v in got.items()
        }
        for tp, records in consumer.poll(timeout_ms=500).items():
            got[tp.partition].extend(records)

    for partition in (0, 1):
        expected = [s for s in sent if s[0] == partition]
        records = got[partition]
        assert [r.offset for r in records] == list(range(len(expected))), [
            r.offset for r in records
        ]
        for r, (p, k, v, h, ts) in zip(records, expected):
            assert r.key == k, (r.offset, r.key, k)
            assert r.value == v, (r.offset, r.value, v)
            assert list(r.headers or []) == h, (r.offset, r.headers, h)
            assert r.timestamp == ts, (r.offset, r.timestamp, ts)

    # Record 8 is partition 0's offset 4 (records 0, 2, 4, 6, 8 went there).
    answer = consumer.offsets_for_times({tps[0]: base_ts + 750})
    assert answer[tps[0]] is not None and answer[tps[0]].offset == 4, answer
    consumer.close()
    print("OK")


if __name__ == "__main__":
    main()
