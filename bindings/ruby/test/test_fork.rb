# test_fork.rb — fork children export their own telemetry under their own pid; nothing of the parent's twice.
require_relative "test_helper"

class TestFork < Minitest::Test
  def test_fork_children
    svc = new_service("fork")
    r = Dir.mktmpdir { |d| run_ok("fork.rb", env: export_env(svc), args: [File.join(d, "child.json")]) }
    j = r.json
    parent, child, second = j["parent_pid"], j["child_pid"], j["second_pid"]
    assert_equal 0, j["child_status"]
    view = receiver.for_service(svc) do |v|
      %w[parent\ after\ fork child\ log second\ child\ log].all? { |b| bodies(v["logs"]).include?(b) }
    end
    assert_no_receiver_errors(view)

    by_body = view["logs"].group_by { |l| l["body"] }
    expected = { "parent before fork" => parent, "child log" => child, "second child log" => second,
                 "parent after fork" => parent }
    assert_equal expected.keys.sort, by_body.keys.sort
    expected.each do |body, pid|
      assert_equal 1, by_body[body].size, "#{body.inspect} arrived #{by_body[body].size} times"
      assert_equal pid, by_body[body].first["resource"]["process.pid"], body
    end

    spans = view["spans"].group_by { |s| s["name"] }
    { "parent-span" => parent, "child-span" => child, "open-at-fork" => parent }.each do |name, pid|
      assert_equal 1, spans.fetch(name, []).size, "span #{name}: #{view["spans"].map { |s| s["name"] }.inspect}"
      assert_equal pid, spans[name].first["resource"]["process.pid"], name
    end
    # The child's work continues the trace it was forked in.
    assert_equal spans["parent-span"].first["span_id"], spans["child-span"].first["parent_span_id"]

    # The child starts from phase 1 and bootstraps its own pipeline.
    assert_includes %w[console deferred], j["child"]["phase_after_fork"]
    assert_equal "started", j["child"]["bootstrap"]["status"]
    assert_equal child, j["child"]["bootstrap"]["pid"]
    refute j["child"]["open_span_recording"], "a span opened before the fork is the parent's"

    metrics = view["metrics"]
    parent_only = metrics.select { |m| m["name"] == "rb.parent.only" }
    refute_empty parent_only
    assert parent_only.all? { |m| m["resource"]["process.pid"] == parent }, "the parent's counter re-sent by a child"
    assert_equal 5, parent_only.max_by { |m| m["time_ns"] }["value"]
    child_only = metrics.select { |m| m["name"] == "rb.child.only" }
    assert child_only.all? { |m| m["resource"]["process.pid"] == child }
    assert_equal 3, child_only.max_by { |m| m["time_ns"] }["value"]
  end

  # A pre-fork master that stays deferred: its workers bootstrap, each exports its own records once,
  # and none of them sends the master's buffered records (N workers would send N copies).
  def test_prefork_master_records_are_not_sent_by_workers
    svc = new_service("prefork")
    j = run_ok("prefork.rb", env: export_env(svc), args: ["3"]).json
    assert_equal "deferred", j["master_phase"]
    view = receiver.for_service(svc) { |v| v["logs"].size >= 3 }
    got = view["logs"].map { |l| [l["body"], l["resource"]["process.pid"]] }.sort
    assert_equal j["workers"].each_with_index.map { |pid, n| ["worker #{n} ready", pid] }.sort, got
  end
end
