# Drives kafka-python through the proxy: produce (plain, gzip, idempotent),
# consume in a group, admin calls; drive2.py does the group and record admin.
import sys, time
from kafka import KafkaProducer, KafkaConsumer, KafkaAdminClient, TopicPartition, OffsetAndMetadata
from kafka.admin import NewTopic, NewPartitions, ConfigResource, ConfigResourceType
bs = sys.argv[1]
admin = KafkaAdminClient(bootstrap_servers=bs, client_id="fuzz-seed")
admin.create_topics([NewTopic("seed", 3, 1), NewTopic("seedc", 1, 1, topic_configs={"cleanup.policy": "compact"})])
admin.list_topics(); admin.describe_topics(["seed"])
admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "seed")])
admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, "1")])
try: admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "seed", configs={"retention.ms": "100000"})])
except Exception as e: print("alter", e)
admin.create_partitions({"seed": NewPartitions(4)})
try: admin.describe_cluster()
except Exception as e: print("cluster", e)
for comp in (None, "gzip"):
    p = KafkaProducer(bootstrap_servers=bs, compression_type=comp, linger_ms=5, client_id="seed-" + str(comp))
    for i in range(30):
        p.send("seed", key=b"k%d" % (i % 5), value=b"value-%d" % i, headers=[("h", b"v")] if i % 3 == 0 else [])
        p.send("seedc", key=b"k%d" % (i % 4), value=b"v" * i)
    p.flush(); p.close()
p = KafkaProducer(bootstrap_servers=bs, enable_idempotence=True, acks="all")
for i in range(10): p.send("seed", value=b"idem-%d" % i)
p.flush(); p.close()
c = KafkaConsumer("seed", bootstrap_servers=bs, group_id="seedgroup", auto_offset_reset="earliest", consumer_timeout_ms=4000, enable_auto_commit=False)
n = 0
for m in c:
    n += 1
    if n == 20: c.commit()
c.commit(); print("consumed", n)
c.commit({TopicPartition("seed", 0): OffsetAndMetadata(1, "meta", -1)})
c.committed(TopicPartition("seed", 0)); c.close()
c2 = KafkaConsumer(bootstrap_servers=bs, consumer_timeout_ms=2000)
c2.assign([TopicPartition("seed", 1)]); c2.seek_to_beginning(); list(c2)
c2.offsets_for_times({TopicPartition("seed", 1): 0}); c2.end_offsets([TopicPartition("seed", 1)]); c2.close()
admin.close(); print("driven")
