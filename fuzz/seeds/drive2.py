# Drives the admin calls drive.py does not: groups, offsets, records, topics.
import sys
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition, OffsetAndMetadata
bs = sys.argv[1]
admin = KafkaAdminClient(bootstrap_servers=bs, client_id="fuzz-seed2")
def t(name, f):
    try: f(); print("ok", name)
    except Exception as e: print("fail", name, repr(e)[:200])
c = KafkaConsumer(bootstrap_servers=bs, group_id="g2", enable_auto_commit=False)
c.commit({TopicPartition("seed", 0): OffsetAndMetadata(3, "m", -1), TopicPartition("seed", 1): OffsetAndMetadata(2, None, -1)}); c.close()
t("list_groups", lambda: admin.list_groups())
t("describe_groups", lambda: admin.describe_groups(["seedgroup", "g2"]))
t("list_group_offsets", lambda: admin.list_group_offsets("g2"))
t("delete_group_offsets", lambda: admin.delete_group_offsets("g2", [TopicPartition("seed", 1)]))
t("delete_records", lambda: admin.delete_records({TopicPartition("seed", 0): 2}))
t("list_partition_offsets", lambda: admin.list_partition_offsets({TopicPartition("seed", 0): -1}))
t("delete_groups", lambda: admin.delete_groups(["seedgroup", "g2"]))
t("delete_topics", lambda: admin.delete_topics(["seedc"]))
t("describe_cluster", lambda: admin.describe_cluster())
admin.close()
