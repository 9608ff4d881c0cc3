# test_packaging.rb — the gem under test is the installed one; its version and its exported symbols.
require_relative "test_helper"

class TestPackaging < Minitest::Test
  def test_require_loads_the_installed_gem_not_the_source_tree
    r = run_ok(code: <<~RUBY)
      require "json"
      require "polytel"
      spec = Gem.loaded_specs["polytel"]
      puts JSON.dump("gem_dir" => spec && spec.full_gem_path, "ext" => $LOADED_FEATURES.grep(/polytel_ext/),
                     "lib" => $LOADED_FEATURES.grep(%r{/polytel\\.rb\\z}), "version" => Polytel::VERSION,
                     "core_version" => Polytel::CORE_VERSION, "phase" => Polytel.phase)
    RUBY
    j = r.json
    refute_nil j["gem_dir"], "polytel was not activated as a gem"
    if ENV["GEM_HOME"]
      assert j["gem_dir"].start_with?(File.expand_path(ENV["GEM_HOME"])), "loaded #{j["gem_dir"]}, not from GEM_HOME"
    end
    [j["ext"], j["lib"]].each do |paths|
      assert_equal 1, paths.size
      refute paths.first.start_with?(File.join(RUBY_DIR, "lib")), "loaded from the source tree: #{paths.first}"
    end
    assert j["ext"].first.end_with?("polytel/polytel_ext.so")
    assert_equal "console", j["phase"]
  end

  def test_version_is_the_projects_one_version
    version = File.read(File.join(REPO, "CMakeLists.txt"))[/project\(\s*polytel\s+VERSION\s+(\d+\.\d+\.\d+)/, 1]
    j = run_ok(code: 'require "json"; require "polytel"; puts JSON.dump(v: Polytel::VERSION, c: Polytel::CORE_VERSION, ' \
                     'g: Gem.loaded_specs["polytel"].version.to_s)').json
    assert_equal({ "v" => version, "c" => version, "g" => version }, j)
  end

  def test_extension_exports_only_its_init_function
    ext = run_ok(code: 'require "polytel"; puts $LOADED_FEATURES.grep(/polytel_ext/).first').stdout.strip
    syms = `nm -D --defined-only #{ext}`.lines.map { |l| l.split.last }
    assert_equal ["Init_polytel_ext"], syms, "the core's symbols must stay private to the extension"
  end

  # extconf.rb's other path: an installed libpolytel found through pkg-config (make passes the prefix
  # that `make install` fills). The same gem file, installed into a scratch GEM_HOME.
  def test_builds_against_an_installed_libpolytel_through_pkg_config
    prefix = ENV["POLYTEL_PREFIX"]
    skip "POLYTEL_PREFIX (an installed polytel, as `make install` makes) not given" unless prefix
    gem_file = Dir[File.join(RUBY_DIR, "polytel-*.gem")].max_by { |f| File.mtime(f) }
    refute_nil gem_file, "no built gem in #{RUBY_DIR}"
    Dir.mktmpdir("polytel-pc") do |home|
      env = CLEAN_ENV.merge("PKG_CONFIG_PATH" => File.join(prefix, "lib", "pkgconfig"), "POLYTEL_BUNDLED_CORE" => nil)
      out = IO.popen(env, ["gem", "install", "--local", "--no-document", "--install-dir", home, gem_file],
                     err: %i[child out], &:read)
      assert $?.success?, out
      mkmf = Dir[File.join(home, "extensions", "**", "polytel-*", "mkmf.log")].first
      log = Dir[File.join(home, "extensions", "**", "gem_make.out")].map { |f| File.read(f) }.join
      assert_includes log, "polytel: using the installed libpolytel", "extconf did not take the pkg-config path\n#{log}"
      refute_nil mkmf
      so = Dir[File.join(home, "extensions", "**", "polytel_ext.so")].first
      libs = `ldd #{so}`
      assert_match(%r{libpolytel\.so\.\d+ => #{Regexp.escape(File.realpath(File.join(prefix, "lib")))}/}, libs)
      j = run_ok(code: 'require "json"; require "polytel"; Polytel.info("via pkg-config"); ' \
                       'puts JSON.dump(phase: Polytel.phase, ext: $LOADED_FEATURES.grep(/polytel_ext/).first)',
                 env: { "GEM_HOME" => home }).json
      assert_equal "console", j["phase"]
      assert j["ext"].start_with?(home)
    end
  end

  def test_api_misuse_raises_ruby_errors
    j = run_ok(code: <<~RUBY).json
      require "json"
      require "polytel"
      def err
        yield
        "no error"
      rescue Exception => e
        e.class.name
      end
      puts JSON.dump(
        "unknown_option" => err { Polytel.bootstrap_worker(servce_name: "typo") },
        "bad_protocol" => err { Polytel.bootstrap_worker(protocol: "grpc") },
        "bad_timeout" => err { Polytel.bootstrap_worker(timeout_ms: -1) },
        "float_counter" => err { Polytel.counter_add("c", 1.5) },
        "negative_counter" => err { Polytel.counter_add("c", -1) },
        "bad_status" => err { Polytel.span("s") { |s| s.set_status(:fine) } },
        "bad_name" => err { Polytel.counter_add(42) },
        "span_without_block" => err { Polytel.span("x") },
        "bad_level" => err { Polytel.log(:loud, "t", "m") },
        "phase_still" => Polytel.phase)
    RUBY
    assert_equal({ "unknown_option" => "ArgumentError", "bad_protocol" => "ArgumentError",
                   "bad_timeout" => "ArgumentError", "float_counter" => "TypeError", "negative_counter" => "ArgumentError",
                   "bad_status" => "ArgumentError", "bad_name" => "TypeError",
                   "span_without_block" => "LocalJumpError", "bad_level" => "ArgumentError",
                   "phase_still" => "console" }, j)
  end
end
