-- The W3C trace context (`traceparent`, `tracestate`) of the span that wrote
-- each event, written with the event in the business transaction; the relay
-- publishes it as AMQP headers so consumers continue the same trace.
-- Expand only: nullable, so a release that does not know the column keeps
-- inserting rows, and rows written before it publish without a trace.
ALTER TABLE outbox ADD COLUMN trace_context jsonb;
