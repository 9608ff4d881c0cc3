# test_signatures.rb — sig/polytel.rbs is valid, and the workers' calls match it at run time (rbs/test).
require_relative "test_helper"

class TestSignatures < Minitest::Test
  SIG = File.join(RUBY_DIR, "sig")

  def rbs
    Gem::Specification.find_by_name("rbs")
  rescue Gem::MissingSpecError
    skip "the rbs gem (bundled with Ruby >= 3.0) is not installed"
  end

  def test_signatures_are_valid
    spec = rbs
    out = IO.popen([RbConfig.ruby, spec.bin_file("rbs"), "-r", "logger", "-r", "monitor", "-I", SIG, "validate"],
                   err: %i[child out], &:read)
    assert $?.success?, out
  end

  # Every call into Polytel made by these workers is checked against the signatures; a mismatch raises.
  def test_runtime_calls_match_the_signatures
    spec = rbs
    env = export_env(new_service("rbs"), "POLYTEL_EXPORTER" => "none", "RBS_TEST_TARGET" => "Polytel,Polytel::*",
                     "RBS_TEST_OPT" => "-r logger -r monitor -I #{SIG}", "RBS_TEST_RAISE" => "true",
                     "RBS_TEST_LOGLEVEL" => "error",
                     "RUBYOPT" => "-I#{File.join(spec.full_gem_path, "lib")} -rrbs/test/setup")
    Dir.mktmpdir do |d|
      [["phases.rb"], ["logger.rb"], ["context.rb"], ["threads.rb", "2", "20"], ["fork.rb", File.join(d, "c.json")]].each do |script, *args|
        r = run_worker(script, env: env, args: args)
        assert r.success?, "#{script} under rbs/test:\n#{r.stderr}"
      end
    end
  end
end
