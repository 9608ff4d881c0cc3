# phases.rb — phase 1 at require; logs before bootstrap (Polytel.info and Polytel::Logger); bootstrap twice; no shutdown.
require "json"
require "polytel"

out = { "phase_at_load" => Polytel.phase }
Polytel.info("before bootstrap via info", step: 1)
Polytel::Logger.new.info("before bootstrap via logger")
opts = ARGV.include?("--enable") ? { telemetry_enabled: true } : {}
out["first"] = Polytel.bootstrap_worker(**opts)
out["second"] = Polytel.bootstrap_worker(**opts)
Polytel.info("after bootstrap")
out["phase_at_end"] = Polytel.phase
puts JSON.dump(out)
# No shutdown: the at_exit hook delivers.
