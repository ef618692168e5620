/* kf_errors.h: how the Kafka sink answers each librdkafka error code.
 *
 * One table decides it for every place a code reaches the sink: a refused
 * rd_kafka_producev, a delivery report, the cause of a fatal producer
 * error, a topic's error in the preflight metadata, and connection errors
 * reported through the error callback. Internal to the plugin. */
#ifndef PF_KAFKA_ERRORS_H
#define PF_KAFKA_ERRORS_H

#include <librdkafka/rdkafka.h>

#include "ppflow_sink.h"

/* The sink's answer to a failure with code ERR:
 *   PF_SINK_ERROR  the record itself is at fault (too large, invalid):
 *                  sending it again can never succeed, the host
 *                  dead-letters it;
 *   PF_SINK_FATAL  the destination refuses every record until someone
 *                  changes it (authorization, authentication, a topic the
 *                  cluster does not have and does not create);
 *   PF_SINK_RETRY  anything else, including codes the table does not
 *                  list: transient (timeouts, leader changes, brokers
 *                  down), so the host retries.
 * Never fails; ERR may be any value, also RD_KAFKA_RESP_ERR_NO_ERROR
 * (RETRY: not a failure this table knows). */
pf_sink_result kf_error_class(rd_kafka_resp_err_t err);

/* For a code that kf_error_class answers PF_SINK_FATAL: what the user
 * should check or change, as a sentence without final period (static
 * text, never NULL for those codes). NULL for every other code. */
const char *kf_error_check(rd_kafka_resp_err_t err);

#endif
