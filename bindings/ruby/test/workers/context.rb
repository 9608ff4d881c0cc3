# context.rb — trace context and the span model: extract/inject, parents, kinds, events, exceptions, links, arrays, scopes.
require "json"
require "polytel"

Polytel.bootstrap_worker
out = {}
REMOTE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".freeze

# extract: header names in any case, String or Symbol keys; a valid tracestate kept.
ctx = Polytel.extract({ "TraceParent" => REMOTE, "TRACESTATE" => "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7" })
out["extracted"] = { "trace_id" => ctx.trace_id, "span_id" => ctx.span_id, "sampled" => ctx.sampled?,
                     "remote" => ctx.remote?, "tracestate" => ctx.tracestate, "traceparent" => ctx.traceparent,
                     "frozen" => ctx.frozen?, "class" => ctx.class.name }
out["symbol_key"] = Polytel.extract({ traceparent: REMOTE })&.span_id

# Malformed headers are ignored (nil), never raised.
bad = {
  "version ff" => "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
  "uppercase hex" => "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
  "zero trace id" => "00-00000000000000000000000000000000-b7ad6b7169203331-01",
  "zero span id" => "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
  "short" => "00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033-01",
  "version 00 with a tail" => "#{REMOTE}-extra",
  "not hex" => "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",
  "empty" => "",
  "nul inside" => "00-0af7651916cd43dd\0448eb211c80319c-b7ad6b7169203331-01"
}
out["malformed"] = bad.transform_values { |v| Polytel.extract({ "traceparent" => v }).nil? }
out["not a string"] = Polytel.extract({ "traceparent" => 42 }).nil?
out["none"] = Polytel.extract({}).nil?
# A later version is read by its first 55 characters when a '-' follows.
out["future version"] = Polytel.extract({ "traceparent" => "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what" })&.span_id
members = (1..33).map { |i| "k#{i}=v#{i}" }.join(",")
out["33 members"] = Polytel.extract({ "traceparent" => REMOTE, "tracestate" => members }).then { |c| [c.span_id, c.tracestate] }
out["bad tracestate"] = Polytel.extract({ "traceparent" => REMOTE, "tracestate" => "no equals sign" }).tracestate

# A consumer span under the remote parent; inject inside it gives its own traceparent and the tracestate.
Polytel.span("consume", parent: ctx, kind: :consumer, "job.id": 7) do |span|
  out["consume"] = { "span_id" => span.span_id, "inject" => Polytel.inject, "context" => span.context.traceparent,
                     "context_class" => span.context.class.name }
  into = { "other" => "kept" }
  out["inject_into"] = Polytel.inject(into).equal?(into) && into
  Polytel.span("child") { |c| out["child"] = c.span_id }
end
out["inject_outside"] = Polytel.inject

# with_span(context): a remote parent for everything in the block, inject included.
Polytel.with_span(ctx) do
  out["with_span_inject"] = Polytel.inject["traceparent"]
  Polytel.span("attached") {}
end

# Every kind, as a Symbol or a String (any case).
%w[internal server client producer consumer].each_with_index do |k, i|
  Polytel.span("kind-#{k}", kind: i.even? ? k.to_sym : k.upcase) {}
end

# Events, exception events, status.
t0 = Time.at(1_700_000_000, 123_456_789, :nsec)
Polytel.span("events") do |span|
  span.add_event("cache.miss", key: "user:1", attributes: { "tries" => 2 })
  span.add_event(:at, timestamp: t0)
  begin
    Integer("nope")
  rescue ArgumentError => e
    span.record_exception(e, handled: true)
  end
end
begin
  Polytel.span("raising", kind: :server) { raise IOError, "disk gone" }
rescue IOError => e
  out["reraised"] = e.message
end

# Arrays become OTLP arrays; mixed ones keep their string form. attributes: beside **attrs.
Polytel.span("arrays", ints: [1, 2, 3], strs: %w[a b], syms: %i[x y], floats: [0.5, 1.5], bools: [true, false],
                       empty: [], mixed: [1, "a"], attributes: { "from.hash" => "h", "ints" => "overridden" }) {}

# Links (a context, a span's context with attributes), a scope, a new trace with parent: false.
Polytel.span("batch", links: [ctx, [Polytel.extract({ "traceparent" => "00-11111111111111111111111111111111-2222222222222222-01" }), { "job" => 2 }]],
                      scope: ["billing", "1.2.0"]) {}
Polytel.span("scoped", scope: "billing") do
  Polytel.span("root-again", parent: false) { |s| out["root_again_trace"] = s.trace_id }
end

Polytel.tracer(:payments, "2.0").span("via-tracer", kind: :client) {}

# A bad keyword raises at the call, before anything starts (calls the signatures forbid: not under rbs/test).
out["errors"] = ENV["RBS_TEST_TARGET"] ? [] : [
  -> { Polytel.span("x", kind: :bogus) {} },
  -> { Polytel.span("x", parent: "00-abc") {} },
  -> { Polytel.span("x", links: [1]) {} },
  -> { Polytel.span("x", attributes: [1]) {} },
  -> { Polytel.span("x", scope: 3) {} },
].map do |l|
  l.call
  nil
rescue ArgumentError, TypeError => e
  "#{e.class}: #{e.message}"
end
out["current_after_errors"] = Polytel.current_span

# Baggage (checked in detail by test_baggage; here its calls go through rbs/test too).
bag_ctx = Polytel.extract({ "traceparent" => REMOTE, "baggage" => "k=v" })
out["baggage"] = Polytel.span("bag", parent: bag_ctx) do |s|
  Polytel.with_baggage(k2: 2) { |c| [s.baggage, c.baggage, Polytel.baggage, bag_ctx.valid?] }
end

Polytel.flush(10_000)
puts JSON.dump(out)
