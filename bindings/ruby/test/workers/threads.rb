# threads.rb — several Ruby threads logging, spanning and counting at once; exact totals expected.
require "json"
require "polytel"

Polytel.bootstrap_worker
threads = Integer(ARGV[0] || 8)
per = Integer(ARGV[1] || 500)
ts = Array.new(threads) do |t|
  Thread.new do
    per.times do |i|
      Polytel.info("t#{t} i#{i}", thread: t)
      Polytel.counter_add("rb.jobs", 1, unit: "1", queue: "main")
      Polytel.histogram_record("rb.latency", i % 10, unit: "ms")
      Polytel.span("work") { Polytel.counter_add("rb.jobs", 2, queue: "side") } if (i % 10).zero?
    end
  end
end
ts.each(&:join)
Polytel.gauge_set("rb.depth", 3.5, unit: "{item}", queue: "main")
Polytel.gauge_set("rb.depth", 7.25, unit: "{item}", queue: "main")
puts JSON.dump("threads" => threads, "per" => per, "stats" => Polytel.stats)
