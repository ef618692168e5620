/* kf_errors.c: the Kafka sink's table of librdkafka error codes and the
 * answer each gets (ERROR: the record is at fault; FATAL: the destination
 * refuses everything until changed; anything not listed: RETRY). The table
 * in docs/sinks/kafka.md ("Failure classes") follows this one. */
#include "kf_errors.h"

#include <stddef.h>

#define CHECK_SASL                                                                                 \
    "check librdkafka.security.protocol, librdkafka.sasl.mechanisms, the user name and the "       \
    "password against the brokers' listener"
#define CHECK_ACL "grant this client's principal the ACL it lacks"
#define CHECK_TOPIC                                                                                \
    "create the topic, fix sink option topic, or let the cluster create topics (brokers: "         \
    "auto.create.topics.enable=true, and librdkafka.allow.auto.create.topics not false)"

static const struct {
    rd_kafka_resp_err_t err;
    pf_sink_result result;
    const char *check; /* FATAL only */
} kf_table[] = {
    /* The record itself. */
    {RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, PF_SINK_ERROR, NULL},
    {RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE, PF_SINK_ERROR, NULL},
    {RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE, PF_SINK_ERROR, NULL},
    {RD_KAFKA_RESP_ERR_INVALID_RECORD, PF_SINK_ERROR, NULL},
    {RD_KAFKA_RESP_ERR__BAD_MSG, PF_SINK_ERROR, NULL},

    /* Authorization: the principal lacks an ACL. */
    {RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, PF_SINK_FATAL,
     "grant this client's principal Describe and Write on the topic"},
    {RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED, PF_SINK_FATAL,
     "grant this client's principal IdempotentWrite on the cluster (the idempotent producer "
     "needs it on brokers before Kafka 2.8)"},
    {RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED, PF_SINK_FATAL, CHECK_ACL},
    {RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED, PF_SINK_FATAL, CHECK_ACL},
    {RD_KAFKA_RESP_ERR_DELEGATION_TOKEN_AUTHORIZATION_FAILED, PF_SINK_FATAL, CHECK_ACL},

    /* Authentication: the brokers refuse this client's credentials. */
    {RD_KAFKA_RESP_ERR__AUTHENTICATION, PF_SINK_FATAL, CHECK_SASL},
    {RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED, PF_SINK_FATAL, CHECK_SASL},
    {RD_KAFKA_RESP_ERR_UNSUPPORTED_SASL_MECHANISM, PF_SINK_FATAL, CHECK_SASL},

    /* A topic the cluster does not have and does not create, or refuses. */
    {RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, PF_SINK_FATAL, CHECK_TOPIC},
    {RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, PF_SINK_FATAL, CHECK_TOPIC},
    {RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION, PF_SINK_FATAL,
     "the brokers refuse this topic name: change sink option topic"},
};

pf_sink_result kf_error_class(rd_kafka_resp_err_t err)
{
    for (size_t i = 0; i < sizeof kf_table / sizeof kf_table[0]; i++)
        if (kf_table[i].err == err) return kf_table[i].result;
    return PF_SINK_RETRY;
}

const char *kf_error_check(rd_kafka_resp_err_t err)
{
    for (size_t i = 0; i < sizeof kf_table / sizeof kf_table[0]; i++)
        if (kf_table[i].err == err) return kf_table[i].check;
    return NULL;
}
