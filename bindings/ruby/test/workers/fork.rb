# fork.rb — a parent that forks twice: fork { } with its own bootstrap, and a bare fork inside an open span.
require "json"
require "polytel"

Polytel.bootstrap_worker
out = { "parent_pid" => Process.pid }
Polytel.info("parent before fork")
Polytel.counter_add("rb.parent.only", 5)
# No flush: the parent's events are still pending when it forks; the child must not send them.

Polytel.span("parent-span") do |span|
  out["parent_span_id"] = span.span_id
  pid = fork do
    child = { "phase_after_fork" => Polytel.phase, "open_span_recording" => span.recording? }
    child["bootstrap"] = Polytel.bootstrap_worker
    Polytel.info("child log")
    Polytel.counter_add("rb.child.only", 3)
    Polytel.span("child-span") {}
    File.write(ARGV[0], JSON.dump(child))
    # Leaves normally: the inherited at_exit hook delivers.
  end
  out["child_pid"] = pid
  Process.wait(pid)
  out["child_status"] = $?.exitstatus
end

second_child = false
Polytel.span("open-at-fork") do
  pid2 = fork
  if pid2.nil?
    second_child = true
    Polytel.bootstrap_worker
    Polytel.info("second child log")
  else
    out["second_pid"] = pid2
    Process.wait(pid2)
  end
end
exit(0) if second_child # after leaving the span block, which it must not export

Polytel.info("parent after fork")
out["child"] = JSON.parse(File.read(ARGV[0]))
puts JSON.dump(out)
