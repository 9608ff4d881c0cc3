# count.rb — the counting workload of tests/support/programs/worker_c.c (one thread) with the Ruby gem: per event a span
# "outer" { span "inner" { log "event <i> from thread 0" } } and counter worker.events += 1; then shutdown and one
# JSON line with the stats. Usage: ruby count.rb EVENTS SHUTDOWN_MS (configuration from the environment).
require "json"
require "polytel"

events = Integer(ARGV[0])
shutdown_ms = Integer(ARGV[1])
Polytel.bootstrap_worker
events.times do |i|
  Polytel.span("outer") do
    Polytel.span("inner") { Polytel.log(:info, "worker", "event #{i} from thread 0") }
  end
  Polytel.counter_add("worker.events", 1, unit: "1")
end
ok = Polytel.shutdown(shutdown_ms)
puts JSON.generate({ shutdown_rc: ok ? 0 : 1, emitted: [events] }.merge(Polytel.stats))
