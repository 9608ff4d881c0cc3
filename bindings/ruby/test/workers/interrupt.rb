# interrupt.rb — flush and shutdown wait without the GVL, and an interrupt (Thread#raise, Ctrl-C) ends the wait.
require "json"
require "polytel"

Polytel.bootstrap_worker
Polytel.info("never delivered")
out = {}
main = Thread.current
Thread.new { sleep 0.3; main.raise(Interrupt, "stop waiting") }
begin
  out["flush"] = Polytel.flush(600_000) # nothing answers: without the unblock function, a 10-minute wait
rescue Interrupt => e
  out["flush_interrupted"] = e.message
end
# While one thread waits in shutdown, others keep running Ruby code (the GVL is released).
ticks = 0
waiter = Thread.new { Polytel.shutdown(600_000) }
ticker = Thread.new { 20.times { ticks += 1; sleep 0.01 } }
ticker.join
waiter.raise(Interrupt)
begin
  waiter.join
rescue Interrupt
  out["shutdown_interrupted"] = true
end
out["ticks_while_waiting"] = ticks
puts JSON.dump(out)
$stdout.flush
# The interrupted calls go on in the background until their own (10-minute) timeout, and an at_exit
# shutdown would wait for them: leave without it.
exit!(0)
