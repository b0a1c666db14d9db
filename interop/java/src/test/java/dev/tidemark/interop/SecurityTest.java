package dev.tidemark.interop;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Collection;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.Future;
import java.util.stream.Collectors;
import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterOptions;
import org.apache.kafka.clients.admin.DescribeConsumerGroupsOptions;
import org.apache.kafka.clients.admin.DescribeTopicsOptions;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialDeletion;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AccessControlEntryFilter;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.config.SaslConfigs;
import org.apache.kafka.common.config.SslConfigs;
import org.apache.kafka.common.errors.DuplicateResourceException;
import org.apache.kafka.common.errors.GroupAuthorizationException;
import org.apache.kafka.common.errors.ResourceNotFoundException;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.apache.kafka.common.errors.TopicAuthorizationException;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourcePatternFilter;
import org.apache.kafka.common.resource.ResourceType;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * SASL_SSL, SCRAM users and ACLs as a Java user meets them, against a secured broker whose
 * address the environment gives (skipped otherwise):
 *
 * <ul>
 *   <li>SECURE_BOOTSTRAP: HOST:PORT of a SASL_SSL listener offering PLAIN, SCRAM-SHA-256 and
 *       SCRAM-SHA-512, with an authorizer (Kafka's StandardAuthorizer) and
 *       allow.everyone.if.no.acl.found left false;
 *   <li>SECURE_TRUSTSTORE: the PEM file of the CA that signed the listener's certificate;
 *   <li>SECURE_ADMIN_USER, SECURE_ADMIN_PASSWORD: a super user with SCRAM-SHA-256 and
 *       SCRAM-SHA-512 credentials who may also log in with PLAIN.
 * </ul>
 *
 * Users made here are SCRAM users (alterUserScramCredentials), with names unique to the run.
 */
class SecurityTest {
    private static final String SCRAM_256 = "SCRAM-SHA-256";
    private static final String SCRAM_512 = "SCRAM-SHA-512";

    private static String bootstrap;
    private static String truststore;
    private static String adminUser;
    private static String adminPassword;

    @BeforeAll
    static void secured() {
        bootstrap = System.getenv("SECURE_BOOTSTRAP");
        Assumptions.assumeTrue(bootstrap != null && !bootstrap.isBlank(),
                "SECURE_BOOTSTRAP is not set: no secured broker to test (see README.md)");
        truststore = required("SECURE_TRUSTSTORE");
        adminUser = required("SECURE_ADMIN_USER");
        adminPassword = required("SECURE_ADMIN_PASSWORD");
    }

    private static String required(String name) {
        String v = System.getenv(name);
        if (v == null || v.isBlank()) {
            throw new IllegalStateException(name + " must be set with SECURE_BOOTSTRAP");
        }
        return v;
    }

    // ---- clients ---------------------------------------------------------------------------

    /** The settings of a SASL_SSL client logging in as user with mechanism. */
    private static Properties secured(String mechanism, String user, String password) {
        Properties p = new Properties();
        p.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, "SASL_SSL");
        p.put(SslConfigs.SSL_TRUSTSTORE_TYPE_CONFIG, "PEM");
        p.put(SslConfigs.SSL_TRUSTSTORE_LOCATION_CONFIG, truststore);
        p.put(SaslConfigs.SASL_MECHANISM, mechanism);
        String module = mechanism.equals("PLAIN")
                ? "org.apache.kafka.common.security.plain.PlainLoginModule"
                : "org.apache.kafka.common.security.scram.ScramLoginModule";
        p.put(SaslConfigs.SASL_JAAS_CONFIG,
                module + " required username=\"" + user + "\" password=\"" + password + "\";");
        return p;
    }

    private static Admin admin(String mechanism, String user, String password) {
        Properties p = secured(mechanism, user, password);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 15000);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        p.put(AdminClientConfig.CLIENT_ID_CONFIG, "interop-security-admin");
        return Admin.create(p);
    }

    private static Admin superAdmin() {
        return admin(SCRAM_512, adminUser, adminPassword);
    }

    private static KafkaProducer<String, String> producer(Properties login, boolean idempotent) {
        Properties p = new Properties();
        p.putAll(login);
        p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 10000);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 20000);
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 20000);
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, idempotent);
        if (!idempotent) {
            p.put(ProducerConfig.ACKS_CONFIG, "all");
        }
        return new KafkaProducer<>(p, new StringSerializer(), new StringSerializer());
    }

    private static KafkaConsumer<String, String> consumer(Properties login, String group) {
        Properties p = new Properties();
        p.putAll(login);
        if (group != null) {
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        }
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 15000);
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 20000);
        return new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer());
    }

    /** A topic the super user creates (one partition), once it is usable. */
    private static String newTopic(String prefix) {
        String name = Kit.unique(prefix);
        try (Admin admin = superAdmin()) {
            Kit.createTopic(admin, name, 1);
        }
        return name;
    }

    /** A SCRAM user (both mechanisms) made by the super user, once it can log in. */
    private static String newUser() {
        String user = Kit.unique("user");
        try (Admin admin = superAdmin()) {
            // One request per mechanism: Kafka refuses two alterations of one user in a request.
            Kit.get(admin.alterUserScramCredentials(List.of(new UserScramCredentialUpsertion(
                    user, new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), password(user)))).all());
            Kit.get(admin.alterUserScramCredentials(List.of(new UserScramCredentialUpsertion(
                    user, new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), password(user)))).all());
        }
        Kit.eventually(user + " logs in", () -> logsIn(SCRAM_256, user, password(user))
                && logsIn(SCRAM_512, user, password(user)));
        return user;
    }

    private static String password(String user) {
        return user + "-secret";
    }

    private static Properties login(String user) {
        return secured(SCRAM_512, user, password(user));
    }

    /** Whether user logs in (DescribeCluster, which needs no ACL, is answered). */
    private static boolean logsIn(String mechanism, String user, String password) {
        try (Admin admin = admin(mechanism, user, password)) {
            Kit.get(admin.describeCluster().clusterId());
            return true;
        } catch (SaslAuthenticationException e) {
            return false;
        }
    }

    private static AclBinding acl(ResourceType type, String name, PatternType pattern, String user,
            AclOperation operation, AclPermissionType permission) {
        return new AclBinding(new ResourcePattern(type, name, pattern),
                new AccessControlEntry("User:" + user, "*", operation, permission));
    }

    private static AclBinding allow(ResourceType type, String name, String user, AclOperation operation) {
        return acl(type, name, PatternType.LITERAL, user, operation, AclPermissionType.ALLOW);
    }

    private static void create(AclBinding... acls) {
        try (Admin admin = superAdmin()) {
            Kit.get(admin.createAcls(List.of(acls)).all());
        }
    }

    /** The error of sending one record, thrown at send or by its future; null when acknowledged. */
    private static Throwable sendError(KafkaProducer<String, String> producer, String topic) {
        try {
            Future<RecordMetadata> f = producer.send(new ProducerRecord<>(topic, 0, "k", "v"));
            producer.flush();
            Kit.get(f);
            return null;
        } catch (KafkaException e) {
            return e;
        }
    }

    private static Throwable produceError(Properties login, String topic, boolean idempotent) {
        try (KafkaProducer<String, String> p = producer(login, idempotent)) {
            return sendError(p, topic);
        }
    }

    /** Waits until a producer logged in with login gets a record acknowledged. */
    private static void eventuallyProduces(Properties login, String topic, boolean idempotent) {
        Kit.eventually("a record acknowledged on " + topic, () -> produceError(login, topic, idempotent) == null);
    }

    private static List<String> readValues(Properties login, String topic, int count) {
        try (KafkaConsumer<String, String> c = consumer(login, null)) {
            TopicPartition tp = new TopicPartition(topic, 0);
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            return Kit.poll(c, count).stream().map(ConsumerRecord::value).collect(Collectors.toList());
        }
    }

    // ---- authentication --------------------------------------------------------------------

    @ParameterizedTest
    @ValueSource(strings = {"SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"})
    void recordsRoundTripOverSaslSsl(String mechanism) {
        String topic = newTopic("sec-roundtrip");
        Properties login = secured(mechanism, adminUser, adminPassword);
        try (KafkaProducer<String, String> p = producer(login, true)) {
            List<Future<RecordMetadata>> acked = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                acked.add(p.send(new ProducerRecord<>(topic, 0, "k" + i, mechanism + "-" + i)));
            }
            p.flush();
            for (int i = 0; i < 3; i++) {
                assertEquals(i, Kit.get(acked.get(i)).offset(), "offset of record " + i);
            }
        }
        assertEquals(List.of(mechanism + "-0", mechanism + "-1", mechanism + "-2"), readValues(login, topic, 3));
    }

    @ParameterizedTest
    @ValueSource(strings = {"SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"})
    void aWrongPasswordOrAnUnknownUserIsRefused(String mechanism) {
        for (String[] who : new String[][] {{adminUser, adminPassword + "-wrong"}, {Kit.unique("nobody"), "x"}}) {
            try (Admin admin = admin(mechanism, who[0], who[1])) {
                Throwable e = Kit.failure(admin.describeCluster().clusterId());
                assertInstanceOf(SaslAuthenticationException.class, e, "login of " + who[0] + " with " + mechanism);
            }
        }
    }

    @Test
    void aUserMadeWithAlterUserScramCredentialsLogsIn() {
        String user = Kit.unique("user");
        assertFalse(logsIn(SCRAM_256, user, password(user)), "no such user yet");
        try (Admin admin = superAdmin()) {
            Kit.get(admin.alterUserScramCredentials(List.of(new UserScramCredentialUpsertion(
                    user, new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), password(user)))).all());
            Kit.eventually(user + " described", () -> {
                try {
                    return Kit.get(admin.describeUserScramCredentials(List.of(user)).description(user))
                            .credentialInfos()
                            .equals(List.of(new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096)));
                } catch (ResourceNotFoundException e) {
                    return false;
                }
            });
        }
        Kit.eventually(user + " logs in with SCRAM-SHA-256", () -> logsIn(SCRAM_256, user, password(user)));
        assertFalse(logsIn(SCRAM_256, user, "another-password"), "a wrong password is still refused");
        assertFalse(logsIn(SCRAM_512, user, password(user)), "no SCRAM-SHA-512 credential");
        // Kafka's controller refuses a request that alters one user twice, even for two mechanisms,
        // and applies neither alteration.
        try (Admin admin = superAdmin()) {
            Throwable twice = Kit.failure(admin.alterUserScramCredentials(List.of(
                    new UserScramCredentialUpsertion(user, new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096),
                            password(user)),
                    new UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_256))).all());
            assertInstanceOf(DuplicateResourceException.class, twice);
        }
        assertTrue(logsIn(SCRAM_256, user, password(user)), "the refused deletion was not applied");
        assertFalse(logsIn(SCRAM_512, user, password(user)), "the refused upsertion was not applied");
    }

    // ---- ACLs ------------------------------------------------------------------------------

    @Test
    void aclsRoundTripThroughCreateDescribeAndDelete() {
        String topic = Kit.unique("sec-acl");
        String user = Kit.unique("acl-user");
        AclBinding read = allow(ResourceType.TOPIC, topic, user, AclOperation.READ);
        AclBinding denyWrite = acl(ResourceType.TOPIC, topic, PatternType.PREFIXED, user, AclOperation.WRITE,
                AclPermissionType.DENY);
        AclBindingFilter mine = new AclBindingFilter(
                new ResourcePatternFilter(ResourceType.TOPIC, topic, PatternType.ANY),
                new AccessControlEntryFilter("User:" + user, null, AclOperation.ANY, AclPermissionType.ANY));
        try (Admin admin = superAdmin()) {
            Kit.get(admin.createAcls(List.of(read, denyWrite)).all());
            Kit.eventually("the ACLs described", () ->
                    Set.copyOf(Kit.get(admin.describeAcls(mine).values())).equals(Set.of(read, denyWrite)));
            AclBindingFilter onlyDenies = new AclBindingFilter(mine.patternFilter(),
                    new AccessControlEntryFilter(null, null, AclOperation.ANY, AclPermissionType.DENY));
            assertEquals(List.of(denyWrite), List.copyOf(Kit.get(admin.describeAcls(onlyDenies).values())));
            Collection<AclBinding> deleted = Kit.get(admin.deleteAcls(List.of(read.toFilter())).all());
            assertEquals(List.of(read), List.copyOf(deleted));
            Kit.eventually("the deleted ACL gone", () ->
                    Set.copyOf(Kit.get(admin.describeAcls(mine).values())).equals(Set.of(denyWrite)));
            Kit.get(admin.deleteAcls(List.of(mine)).all());
            Kit.eventually("no ACL left", () -> Kit.get(admin.describeAcls(mine).values()).isEmpty());
        }
    }

    @Test
    void withoutAclsAUserIsRefusedUntilGranted() {
        String topic = newTopic("sec-grant");
        String group = Kit.unique("sec-grant");
        String user = newUser();
        Properties login = login(user);
        assertInstanceOf(TopicAuthorizationException.class, produceError(login, topic, false));

        create(allow(ResourceType.TOPIC, topic, user, AclOperation.WRITE));
        // Idempotent (the default): InitProducerId is allowed by Write on a topic (KIP-679).
        eventuallyProduces(login, topic, true);

        // Reading in a group needs Read on the group too.
        create(allow(ResourceType.TOPIC, topic, user, AclOperation.READ));
        try (KafkaConsumer<String, String> c = consumer(login, group)) {
            c.subscribe(List.of(topic));
            GroupAuthorizationException refused = assertThrows(GroupAuthorizationException.class, () -> {
                        for (int i = 0; i < 100; i++) {
                            c.poll(java.time.Duration.ofMillis(200));
                        }
                    });
            assertEquals(group, refused.groupId(), "the group refused");
        }
        create(allow(ResourceType.GROUP, group, user, AclOperation.READ));
        Kit.eventually("the group joined", () -> {
            try (KafkaConsumer<String, String> c = consumer(login, group)) {
                c.subscribe(List.of(topic));
                List<ConsumerRecord<String, String>> got = Kit.poll(c, 1);
                c.commitSync();
                return got.get(0).value().equals("v");
            } catch (GroupAuthorizationException e) {
                return false;
            }
        });
        try (Admin admin = superAdmin()) {
            Map<TopicPartition, OffsetAndMetadata> committed =
                    Kit.get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
            assertEquals(1L, committed.get(new TopicPartition(topic, 0)).offset());
        }
    }

    @Test
    void aDenyOverridesAnAllow() {
        String topic = newTopic("sec-deny");
        String user = newUser();
        Properties login = login(user);
        try (KafkaProducer<String, String> p = producer(secured(SCRAM_512, adminUser, adminPassword), true)) {
            assertNull(sendError(p, topic));
        }
        create(allow(ResourceType.TOPIC, topic, user, AclOperation.ALL),
                acl(ResourceType.TOPIC, topic, PatternType.LITERAL, user, AclOperation.WRITE, AclPermissionType.DENY));
        // Read is allowed (by All) ...
        Kit.eventually(user + " reads " + topic, () -> {
            try {
                return readValues(login, topic, 1).equals(List.of("v"));
            } catch (TopicAuthorizationException e) {
                return false;
            }
        });
        // ... and Write, also allowed by All, is denied.
        assertInstanceOf(TopicAuthorizationException.class, produceError(login, topic, false));
    }

    @Test
    void aPrefixedAclCoversTheTopicsItPrefixes() {
        String prefix = Kit.unique("sec-pfx");
        String covered = prefix + "-orders";
        String other = newTopic("sec-other");
        try (Admin admin = superAdmin()) {
            Kit.createTopic(admin, covered, 1);
        }
        String user = newUser();
        Properties login = login(user);
        create(acl(ResourceType.TOPIC, prefix, PatternType.PREFIXED, user, AclOperation.WRITE,
                AclPermissionType.ALLOW));
        eventuallyProduces(login, covered, false);
        assertInstanceOf(TopicAuthorizationException.class, produceError(login, other, false));
        assertInstanceOf(TopicAuthorizationException.class, produceError(login, prefix.substring(0, 8), false),
                "a name shorter than the prefix");
    }

    // ---- authorized operations (KIP-430) ---------------------------------------------------

    private static final Set<AclOperation> TOPIC_OPERATIONS = EnumSet.of(AclOperation.READ, AclOperation.WRITE,
            AclOperation.CREATE, AclOperation.DELETE, AclOperation.ALTER, AclOperation.DESCRIBE,
            AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS);
    private static final Set<AclOperation> GROUP_OPERATIONS = EnumSet.of(AclOperation.READ, AclOperation.DESCRIBE,
            AclOperation.DELETE, AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS);
    private static final Set<AclOperation> CLUSTER_OPERATIONS = EnumSet.of(AclOperation.CREATE,
            AclOperation.CLUSTER_ACTION, AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS,
            AclOperation.IDEMPOTENT_WRITE, AclOperation.ALTER, AclOperation.DESCRIBE);

    private record Operations(Set<AclOperation> topic, Set<AclOperation> group, Set<AclOperation> cluster) {}

    private static Operations authorizedOperations(Admin admin, String topic, String group) {
        var topics = Kit.get(admin.describeTopics(List.of(topic),
                new DescribeTopicsOptions().includeAuthorizedOperations(true)).allTopicNames());
        var groups = Kit.get(admin.describeConsumerGroups(List.of(group),
                new DescribeConsumerGroupsOptions().includeAuthorizedOperations(true)).all());
        var cluster = Kit.get(admin.describeCluster(
                new DescribeClusterOptions().includeAuthorizedOperations(true)).authorizedOperations());
        return new Operations(topics.get(topic).authorizedOperations(), groups.get(group).authorizedOperations(),
                cluster);
    }

    @Test
    void authorizedOperationsAreThoseTheAclsAllow() {
        String topic = newTopic("sec-ops");
        String group = Kit.unique("sec-ops");
        String user = newUser();
        Properties login = login(user);
        create(allow(ResourceType.TOPIC, topic, user, AclOperation.READ),
                acl(ResourceType.TOPIC, topic, PatternType.LITERAL, user, AclOperation.ALTER_CONFIGS,
                        AclPermissionType.ALLOW),
                acl(ResourceType.TOPIC, topic, PatternType.LITERAL, user, AclOperation.ALTER_CONFIGS,
                        AclPermissionType.DENY),
                allow(ResourceType.GROUP, group, user, AclOperation.READ),
                allow(ResourceType.CLUSTER, "kafka-cluster", user, AclOperation.IDEMPOTENT_WRITE));
        // The group exists once its offsets are committed.
        Kit.eventually(user + " commits in " + group, () -> {
            try (KafkaConsumer<String, String> c = consumer(login, group)) {
                c.commitSync(Map.of(new TopicPartition(topic, 0), new OffsetAndMetadata(0)));
                return true;
            } catch (GroupAuthorizationException | TopicAuthorizationException e) {
                return false;
            }
        });
        try (Admin admin = admin(SCRAM_512, user, password(user))) {
            Operations seen = authorizedOperations(admin, topic, group);
            // Read implies Describe; AlterConfigs would imply DescribeConfigs, but it is denied, and
            // a DENY of AlterConfigs leaves the DescribeConfigs the ALLOW implies.
            assertEquals(EnumSet.of(AclOperation.READ, AclOperation.DESCRIBE, AclOperation.DESCRIBE_CONFIGS),
                    seen.topic());
            assertEquals(EnumSet.of(AclOperation.READ, AclOperation.DESCRIBE), seen.group());
            // Without Describe on the cluster, the cluster's operations are not told.
            assertEquals(Set.of(), seen.cluster());
        }
        create(allow(ResourceType.CLUSTER, "kafka-cluster", user, AclOperation.DESCRIBE));
        try (Admin admin = admin(SCRAM_512, user, password(user))) {
            Kit.eventually("Describe on the cluster applies", () -> !authorizedOperations(admin, topic, group)
                    .cluster().isEmpty());
            assertEquals(EnumSet.of(AclOperation.IDEMPOTENT_WRITE, AclOperation.DESCRIBE),
                    authorizedOperations(admin, topic, group).cluster());
            // Not asked for: not told.
            assertNull(Kit.get(admin.describeTopics(List.of(topic)).allTopicNames()).get(topic)
                    .authorizedOperations());
            assertNull(Kit.get(admin.describeCluster().authorizedOperations()));
        }
        try (Admin admin = superAdmin()) {
            assertEquals(new Operations(TOPIC_OPERATIONS, GROUP_OPERATIONS, CLUSTER_OPERATIONS),
                    authorizedOperations(admin, topic, group), "a super user may do everything that applies");
        }
    }
}
