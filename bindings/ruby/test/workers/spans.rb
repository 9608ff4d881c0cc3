# spans.rb — nested spans, return values, exceptions, break/throw, fibers, threads with with_span.
require "json"
require "polytel"

Polytel.bootstrap_worker
out = {}

out["value"] = Polytel.span("outer", job: "import", n: 3) do |outer|
  out["outer"] = { "trace_id" => outer.trace_id, "span_id" => outer.span_id, "parent" => outer.parent_span_id }
  Polytel.info("inside outer", step: "a")
  Polytel.span(:inner) do |inner|
    inner.set_attribute("late", 42)
    out["inner_current"] = Polytel.current_span.span_id == inner.span_id
    Polytel.span("innermost") { 7 * 6 }
  end
end
out["current_after"] = Polytel.current_span

error = ArgumentError.new("bad input")
begin
  Polytel.span("failing") { Polytel.span("failing-child") { raise error } }
rescue ArgumentError => e
  out["rescued_same"] = e.equal?(error)
  out["backtrace_kept"] = e.backtrace.any? { |l| l.include?("spans.rb") }
end

cause_kept = begin
  Polytel.span("with-cause") do
    begin
      raise KeyError, "inner"
    rescue KeyError
      raise "outer"
    end
  end
rescue RuntimeError => e
  e.cause.is_a?(KeyError)
end
out["cause_kept"] = cause_kept

class WeirdError < StandardError
  def message = raise("message broken")
end
begin
  Polytel.span("weird-error") { raise WeirdError }
rescue WeirdError
  out["weird_rescued"] = true
end

[1].each { Polytel.span("broken-out") { break } }
catch(:done) { Polytel.span("thrown-out") { throw :done } }
out["current_after_jumps"] = Polytel.current_span

Polytel.span("fiber-parent") do
  Fiber.new { Polytel.span("in-fiber") { out["fiber_sees_parent"] = !Polytel.current_span.parent_span_id.nil? } }.resume
end

Polytel.span("pool-parent") do |parent|
  Thread.new { Polytel.with_span(parent) { Polytel.span("pool-child") {} } }.join
  Thread.new { Polytel.span("thread-root") {} }.join
  Polytel.with_span(nil) { Polytel.span("detached") {} }
end

def leaves_early
  Polytel.span("returned-from") { return :early }
  :late
end
out["returned"] = leaves_early
victim = Thread.new { Polytel.span("killed") { sleep } }
Thread.pass until victim.status == "sleep"
victim.kill
victim.join

Polytel.span("status-ok") { |s| s.set_status(:ok) }
Polytel.span("status-error") { |s| s.set_status("error", "went wrong") }
bad = Object.new
def bad.to_s = raise("nope")
Polytel.span("overridden", state: "pending", n: 1) { |s| s.set_attribute("state", "done"); s[:extra] = 2**62 }
Polytel.span("odd-attrs", obj: bad, sym: :val, big: 2**70, i64: -2**63, arr: [1, 2], nothing: nil, f: 1.5, t: true, "str key" => "v") {}
Polytel.info("odd log", obj: bad, big: -2**64)
Polytel.info(bad)

# A block without parameters gets no Span object up front: Polytel.current_span makes it when asked (once),
# and it works as one (attributes, status, an exception, kept past the end); its parent and its children
# link as with any span, however deep (the stack moves while blocks run), and a to_s that opens a span
# while the span is being ended does not disturb it.
kept = nil
Polytel.span("lazy", n: 1) do
  Polytel.span("lazy-child") {}
  cur = Polytel.current_span
  cur.set_attribute("via", "current_span")
  cur.set_status(:ok)
  out["lazy_same"] = cur.equal?(Polytel.current_span)
  kept = cur
end
out["lazy"] = { "span_id" => kept.span_id, "recording_after" => kept.recording? }
begin
  Polytel.span("lazy-raise") { Polytel.current_span.add_event("before"); raise IOError, "lazy" }
rescue IOError => e
  out["lazy_raise"] = e.message
end
def nest(n) = n.zero? ? Polytel.span("deep-0") { Polytel.current_span&.parent_span_id } : Polytel.span("deep-#{n}") { nest(n - 1) }
out["deep_parent"] = nest(20)
spans_in_to_s = Object.new
def spans_in_to_s.to_s = Polytel.span("in-to_s") { "made in a span" }
Polytel.span("ended-with-to_s", v: spans_in_to_s) { 20.times { |i| Polytel.span("sibling-#{i}") {} } }

puts JSON.dump(out)
