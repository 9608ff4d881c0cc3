# ractor.rb — the C recording calls work from a non-main Ractor (the extension declares itself Ractor-safe).
require "json"
require "polytel"

Warning[:experimental] = false
Polytel.bootstrap_worker
r = Ractor.new do
  Polytel.info("from a ractor", n: 1)
  Polytel.counter_add("rb.ractor", 4)
  Polytel.span("ractor-span") { 21 * 2 }
end
puts JSON.dump("value" => r.take)
