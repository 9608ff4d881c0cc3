# prefork.rb — a pre-fork master: deferred (never bootstraps itself), logs, forks workers that bootstrap.
require "json"
require "polytel"

Polytel.info("master booting")
pids = Array.new(Integer(ARGV[0] || 2)) do |n|
  fork do
    Polytel.bootstrap_worker
    Polytel.info("worker #{n} ready")
  end
end
pids.each { |pid| Process.wait(pid) }
puts JSON.dump("master_phase" => Polytel.phase, "workers" => pids)
