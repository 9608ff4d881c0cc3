# sampling.rb — spans the sampler leaves out: not exported, counted as sampled_out, their context still propagates.
require "json"
require "polytel"

Polytel.bootstrap_worker
out = {}
Polytel.span("unsampled", kind: :producer, n: [1, 2]) do |s|
  s.add_event("ignored")
  out["recording"] = s.recording?
  out["sampled"] = s.sampled?
  out["inject"] = Polytel.inject["traceparent"]
  Polytel.span("child") { |c| out["child_sampled"] = c.sampled? }
end
begin
  Polytel.span("unsampled-raising") { raise "x" }
rescue RuntimeError
  out["raised"] = true
end
# parentbased: an upstream that did not sample decides for us too; one that did, too.
unsampled_parent = Polytel.extract({ "traceparent" => "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00" })
Polytel.span("under-unsampled", parent: unsampled_parent) { |s| out["under_unsampled"] = s.sampled? }
sampled_parent = Polytel.extract({ "traceparent" => "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" })
Polytel.span("under-sampled", parent: sampled_parent) { |s| out["under_sampled"] = s.sampled? }
Polytel.flush(10_000)
out["stats"] = Polytel.stats.slice(:sampled_out, :spans_recorded)
puts JSON.dump(out)
