# extconf.rb — configures polytel_ext: against an installed libpolytel (pkg-config), else the bundled core sources.
require "mkmf"
require "fileutils"

HERE = __dir__

def polytel_missing!(what, apt)
  abort <<~MSG

    polytel: #{what} was not found.
      Debian/Ubuntu: sudo apt-get install #{apt}
      (other systems: the development package of #{what.split.first}; or make `pkg-config` find it)
    (see mkmf.log in the gem's build directory for the compiler's own words)
  MSG
end

# Where the core sources are: vendored into the gem (ext/polytel/core), or the repository when
# building straight from a clone.
def polytel_core_dir
  [ENV["POLYTEL_CORE_DIR"], File.join(HERE, "core"), File.expand_path("../../../../core", HERE)].compact.find do |d|
    File.file?(File.join(d, "include", "polytel.h"))
  end
end

# The version lives in one place, the root CMakeLists.txt's project(VERSION); the gem carries it as VERSION.
def polytel_version(core)
  v = File.join(core, "VERSION")
  return File.read(v).strip if File.file?(v)
  root = File.join(core, "..", "CMakeLists.txt")
  m = File.file?(root) && File.read(root)[/project\(\s*polytel\s+VERSION\s+(\d+\.\d+\.\d+)/, 1]
  m or abort "polytel: cannot find the core version (no #{v}, no project(polytel VERSION x.y.z) in #{root})"
end

# The core's own source list: core/CMakeLists.txt's set(POLYTEL_SOURCES ...) plus the libuv additions.
def polytel_core_sources(core)
  cm = File.read(File.join(core, "CMakeLists.txt"))
  list = cm[/set\(\s*POLYTEL_SOURCES(.*?)\)/m, 1].to_s.scan(%r{src/((?:\w+/)*\w+\.c)}).flatten
  uv = cm[/if\(\s*POLYTEL_WITH_UV\s*\)\s*list\(\s*APPEND\s+POLYTEL_SOURCES(.*?)\)/m, 1].to_s
                                                                                        .scan(%r{src/((?:\w+/)*\w+\.c)}).flatten
  srcs = (list + uv).uniq
  srcs = Dir[File.join(core, "src", "**", "*.c")].map { |f| f.delete_prefix(File.join(core, "src") + "/") } if srcs.empty?
  srcs # paths under core/src, "common/config.c" (the layer folders; basenames are unique)
end

def polytel_generate_version_h(core, version)
  major, minor, patch = version.split(".")
  text = File.read(File.join(core, "include", "polytel", "version.h.in"))
  text = text.gsub("@PROJECT_VERSION_MAJOR@", major).gsub("@PROJECT_VERSION_MINOR@", minor)
             .gsub("@PROJECT_VERSION_PATCH@", patch).gsub("@PROJECT_VERSION@", version)
  FileUtils.mkdir_p("polytel")
  File.write(File.join("polytel", "version.h"), text)
end

bundled_forced = enable_config("bundled-core", ENV["POLYTEL_BUNDLED_CORE"] == "1")
use_system = !bundled_forced && pkg_config("polytel") &&
             have_header("polytel.h") && have_func("polytel_init_console_only", "polytel.h")

if use_system
  libdir = pkg_config("polytel", "variable=libdir")
  # The library is found at run time without LD_LIBRARY_PATH.
  $LDFLAGS << " -Wl,-rpath,#{libdir}" if libdir && !libdir.empty?
  installed = pkg_config("polytel", "modversion").to_s.strip
  message "polytel: using the installed libpolytel (#{installed}) from #{libdir}\n"
  core = polytel_core_dir
  ours = core && polytel_version(core)
  if ours && installed.split(".").first != ours.split(".").first
    message "polytel: note: this gem is #{ours}, the installed libpolytel #{installed} (another major version); " \
            "POLYTEL_BUNDLED_CORE=1 builds the gem's own core instead\n"
  end
else
  core = polytel_core_dir or abort <<~MSG

    polytel: neither an installed libpolytel (pkg-config polytel) nor the bundled core sources were found.
      The gem normally carries the core in ext/polytel/core (its gemspec copies it when the gem is built);
      build the gem with `gem build polytel.gemspec` from bindings/ruby in a polytel checkout,
      or install libpolytel and set PKG_CONFIG_PATH so that `pkg-config polytel` finds it.
  MSG
  version = polytel_version(core)
  message "polytel: building the bundled core #{version} from #{core}\n"

  (pkg_config("libuv") && have_header("uv.h")) || have_library("uv", "uv_loop_init", "uv.h") ||
    polytel_missing!("libuv (headers and library)", "libuv1-dev")
  (pkg_config("libcurl") && have_header("curl/curl.h")) || have_library("curl", "curl_multi_init", "curl/curl.h") ||
    polytel_missing!("libcurl (headers and library)", "libcurl4-openssl-dev")
  have_library("deflate", "libdeflate_alloc_compressor", "libdeflate.h") ||
    polytel_missing!("libdeflate (headers and library)", "libdeflate-dev")
  have_library("zstd", "ZSTD_compress", "zstd.h") || polytel_missing!("libzstd (headers and library)", "libzstd-dev")
  have_library("pthread", "pthread_create", "pthread.h") || polytel_missing!("pthreads", "libc6-dev")

  polytel_generate_version_h(core, version)
  srcdir_core = File.expand_path(core) == File.expand_path(File.join(HERE, "core")) ? "$(srcdir)/core" : core
  core_srcs = polytel_core_sources(core)
  $srcs = ["polytel_ext.c"] + core_srcs.map { |f| File.basename(f) }
  core_srcs.map { |f| File.dirname(f) }.uniq.each { |d| $VPATH << "#{srcdir_core}/src/#{d}" }
  $INCFLAGS << " -I#{srcdir_core}/include -I#{srcdir_core}/src"
  $defs << "-D_GNU_SOURCE" << "-DPOLYTEL_WITH_UV=1"
end

$CFLAGS << " -std=gnu11"
# Only Init_polytel_ext leaves the extension: the core's symbols stay private to it.
File.write("polytel_ext.map", "{ global: Init_polytel_ext; local: *; };\n")
$DLDFLAGS << " -Wl,--version-script=polytel_ext.map" if try_ldflags("-Wl,--version-script=polytel_ext.map")
have_func("rb_ext_ractor_safe", "ruby.h")

create_makefile("polytel/polytel_ext")
