/**
 * The Dynamo frontend metrics this layer reads, by Dynamo's names (ai-dynamo/dynamo:
 * `lib/runtime/src/metrics/prometheus_names.rs`, `lib/llm/src/http/service/metrics.rs`). The twin exports
 * the same names (src/twin/dynamo-metrics.ts); a unit test checks that every name here is one the twin
 * serves, so PromQL tested against the twin holds for a real deployment.
 *
 * The frontend labels its request metrics with `model` (lower-cased) only; `dynamo_namespace` appears when
 * Dynamo's PodMonitor adds it by relabelling, which is why a selector names whatever labels the scrape has.
 */

export const DYNAMO = {
  requestsStarted: 'dynamo_frontend_requests_started_total',
  requests: 'dynamo_frontend_requests_total',
  inflight: 'dynamo_frontend_inflight_requests',
  queued: 'dynamo_frontend_queued_requests',
  inputTokens: 'dynamo_frontend_input_sequence_tokens',
  outputTokens: 'dynamo_frontend_output_sequence_tokens',
  cachedTokens: 'dynamo_frontend_cached_tokens',
  outputTokensTotal: 'dynamo_frontend_output_tokens_total',
  ttft: 'dynamo_frontend_time_to_first_token_seconds',
  itl: 'dynamo_frontend_inter_token_latency_seconds',
  requestDuration: 'dynamo_frontend_request_duration_seconds',
} as const;
