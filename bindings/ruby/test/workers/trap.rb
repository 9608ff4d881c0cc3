# trap.rb — a signal whose trap handler does not raise arrives during flush and shutdown: both keep waiting.
require "json"
require "polytel"

Polytel.bootstrap_worker
traps = 0
trap("USR1") { traps += 1 }
out = {}
Polytel.info("slow delivery 1")
Thread.new { sleep 0.2; Process.kill(:USR1, Process.pid) }
out["flush"] = Polytel.flush(20_000) # the collector answers after 1 s: the signal comes first
Polytel.info("slow delivery 2")
Thread.new { sleep 0.2; Process.kill(:USR1, Process.pid) }
out["shutdown"] = Polytel.shutdown(20_000)
out["traps"] = traps
puts JSON.dump(out)
