# client.rb — the Ruby side of the Sidekiq suite: 20 pushes through Sidekiq::Client, inside one span; prints what it did.
require "json"
require "polytel/sidekiq"

n = Integer(ARGV.fetch(0, "20"))
Polytel.bootstrap_worker
jids = []
root = Polytel.span("enqueue batch") do |span|
  n.times { |i| jids << Sidekiq::Client.push("class" => "PolytelTest::EchoJob", "args" => [i, "ruby"], "queue" => "default") }
  { "trace_id" => span.trace_id, "span_id" => span.span_id }
end
ok = Polytel.flush(30_000)
puts JSON.dump({ "jids" => jids, "root" => root, "flushed" => ok })
