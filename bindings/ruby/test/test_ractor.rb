# test_ractor.rb — rb_ext_ractor_safe(true) is true: the C recording calls work inside a Ractor.
require_relative "test_helper"

class TestRactor < Minitest::Test
  def test_recording_from_a_ractor
    svc = new_service("ractor")
    r = run_ok("ractor.rb", env: export_env(svc))
    assert_equal 42, r.json["value"]
    view = receiver.for_service(svc) { |v| v["spans"].any? && v["logs"].any? }
    assert_equal ["from a ractor"], bodies(view["logs"])
    assert_equal({ "n" => 1 }, view["logs"].first["attributes"])
    assert_equal ["ractor-span"], view["spans"].map { |s| s["name"] }
    assert_equal 4, view["metrics"].select { |m| m["name"] == "rb.ractor" }.max_by { |m| m["time_ns"] }["value"]
  end
end
