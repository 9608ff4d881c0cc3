# no_receiver.rb — nothing answers (or the collector stalls): shutdown returns within its bound.
require "json"
require "polytel"

Polytel.bootstrap_worker
200.times { |i| Polytel.info("undeliverable #{i}") }
Polytel.span("undeliverable-span") {}
t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
ok = ARGV[0] == "at_exit" ? nil : Polytel.shutdown(Integer(ARGV[1] || 1000))
out = { "shutdown_ok" => ok, "seconds" => Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0,
        "phase" => Polytel.phase, "stats" => Polytel.stats }
puts JSON.dump(out)
