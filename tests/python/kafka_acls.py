"""ACLs through two Kafka clients nobody here wrote: confluent-kafka
(librdkafka's CreateAcls, DescribeAcls, DeleteAcls) and kafka-python.
Runs as a super user: STRATA_TEST_KAFKA_SASL and STRATA_TEST_KAFKA_SSL_CA as
in kafka_clients.py.

Usage: kafka_acls.py BOOTSTRAP PRINCIPAL

With confluent-kafka: allows PRINCIPAL Read on topics prefixed "orders-"
and on group "g1", denies it Write on topic "orders-eu". Lists them with
kafka-python and confluent-kafka, deletes the deny with a confluent filter,
and lists again with kafka-python. Prints JSON.
"""
import json
import sys
import time

from kafka_clients import confluent_security, kafka_python_security


def triple(restype, name, pattern, principal, operation, permission):
    return [str(restype), name, str(pattern), principal, str(operation), str(permission)]


def eventually(listing, count, seconds=10):
    """listing() once it has `count` entries, or what it has after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        got = listing()
        if len(got) == count or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def main():
    bootstrap, principal = sys.argv[1], sys.argv[2]
    from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                       AdminClient, ResourcePatternType, ResourceType)
    admin = AdminClient({"bootstrap.servers": bootstrap, **confluent_security()})
    bindings = [
        AclBinding(ResourceType.TOPIC, "orders-", ResourcePatternType.PREFIXED, principal, "*",
                   AclOperation.READ, AclPermissionType.ALLOW),
        AclBinding(ResourceType.GROUP, "g1", ResourcePatternType.LITERAL, principal, "*",
                   AclOperation.READ, AclPermissionType.ALLOW),
        AclBinding(ResourceType.TOPIC, "orders-eu", ResourcePatternType.LITERAL, principal, "*",
                   AclOperation.WRITE, AclPermissionType.DENY),
    ]
    created = {}
    for b, f in admin.create_acls(bindings, request_timeout=15).items():
        created[str(b)] = f.result() is None
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, principal, None,
                                  AclOperation.ANY, AclPermissionType.ANY)

    def confluent_list():
        listed = admin.describe_acls(everything, request_timeout=15).result()
        return sorted(
            [b.restype_int, b.name, b.resource_pattern_type_int, b.principal, b.operation_int, b.permission_type_int]
            for b in listed)

    # ACL changes reach every broker's metadata within moments, not at once
    # (Kafka's too): a describe answered by another broker may not show them
    # yet.
    confluent_listed = eventually(confluent_list, 3)

    from kafka.admin import (ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                             KafkaAdminClient, ResourcePatternFilter, ResourceType as KResourceType)
    kp = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000, **kafka_python_security())

    def kafka_python_list():
        f = ACLFilter(principal=principal, host=None, operation=ACLOperation.ANY,
                      permission_type=ACLPermissionType.ANY,
                      resource_pattern=ResourcePatternFilter(KResourceType.ANY, None, ACLResourcePatternType.ANY))
        acls, error = kp.describe_acls(f)
        assert error.errno == 0, error
        return sorted([int(a.resource_pattern.resource_type), a.resource_pattern.resource_name,
                       int(a.resource_pattern.pattern_type), a.principal, int(a.operation),
                       int(a.permission_type)] for a in acls)

    kafka_python_before = eventually(kafka_python_list, 3)
    deny = AclBindingFilter(ResourceType.TOPIC, "orders-eu", ResourcePatternType.LITERAL, principal, None,
                            AclOperation.ANY, AclPermissionType.DENY)
    deleted = []
    for _, f in admin.delete_acls([deny], request_timeout=15).items():
        deleted.extend([b.name, b.operation_int, b.permission_type_int] for b in f.result())
    print(json.dumps({
        "created": created,
        "confluent_listed": confluent_listed,
        "kafka_python_before": kafka_python_before,
        "deleted": deleted,
        "kafka_python_after": eventually(kafka_python_list, 2),
    }))
    kp.close()


if __name__ == "__main__":
    main()
