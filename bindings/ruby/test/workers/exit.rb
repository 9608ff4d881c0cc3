# exit.rb — records, then exit without shutdown or flush (and a fork { } child that does the same).
require "json"
require "polytel"

n = Integer(ARGV[0] || 2000)
Polytel.bootstrap_worker
pid = fork do
  Polytel.bootstrap_worker
  100.times { |i| Polytel.info("child #{i}") }
end
Process.wait(pid)
n.times do |i|
  Polytel.info("exit #{i}")
  Polytel.counter_add("rb.exit.count")
  Polytel.span("exit-span") {} if (i % 10).zero?
end
puts JSON.dump("child_pid" => pid, "child_status" => $?.exitstatus)
$stdout.flush
Polytel.span("exit-in-span") { exit(Integer(ARGV[1] || 0)) }
