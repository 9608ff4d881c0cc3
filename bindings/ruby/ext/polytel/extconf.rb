# extconf.rb — configures polytel_ext: against an installed libpolytel (pkg-config), else the bundled core sources.
require "mkmf"
require "fileutils"

HERE = __dir__

# Where the core sources are: vendored into the gem (ext/polytel/core), or the repository when
# building straight from a clone.
def polytel_core_dir
  [ENV["POLYTEL_CORE_DIR"], File.join(HERE, "core"), File.expand_path("../../../../core", HERE)].compact.find do |d|
    File.file?(File.join(d, "sources.txt"))
  end
end

# The checked-in polytel/version.h, rendered by CMake from project(VERSION): the one version.
def polytel_version(core)
  h = File.join(core, "include", "polytel", "version.h")
  File.file?(h) && File.read(h)[/#define POLYTEL_VERSION_STRING "([^"]+)"/, 1] or
    abort "polytel: no POLYTEL_VERSION_STRING in #{h}"
end

# core/sources.txt, the one list of core sources: a path per line (relative to core/), words after it
# say where it is left out; this extension always has libuv, so every line is built.
def polytel_core_sources(core)
  File.readlines(File.join(core, "sources.txt")).map { |l| l.sub(/#.*/, "").split.first }.compact
end

# Every missing dependency at once, each with its package, rather than the first one found missing.
def polytel_check_deps!
  deps = [
    ["libuv", "uv.h", "uv", "uv_loop_init", "libuv1-dev", "libuv-devel"],
    ["libcurl", "curl/curl.h", "curl", "curl_multi_init", "libcurl4-openssl-dev", "libcurl-devel"],
    ["libisal", "isa-l/igzip_lib.h", "isal", "isal_deflate_stateless", "libisal-dev", "isa-l-devel"],
    ["libzstd", "zstd.h", "zstd", "ZSTD_compress", "libzstd-dev", "libzstd-devel"],
  ]
  missing = deps.reject do |pc, header, lib, func, _deb, _rpm|
    (pkg_config(pc) && have_header(header)) || have_library(lib, func, header)
  end
  have_library("pthread", "pthread_create", "pthread.h") or missing << ["pthreads", "pthread.h", nil, nil, "libc6-dev", "glibc-devel"]
  return if missing.empty?
  abort <<~MSG

    polytel: cannot build the extension: missing #{missing.map { |m| "#{m[0]} (#{m[1]})" }.join(", ")}.
      Debian/Ubuntu: sudo apt-get install #{missing.map { |m| m[4] }.join(" ")}
      Fedora/RHEL:   sudo dnf install #{missing.map { |m| m[5] }.join(" ")}
      (the x86_64-linux platform gem needs none of this; see mkmf.log in the gem's build directory for the compiler's own words)
  MSG
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

  polytel_check_deps!
  srcdir_core = File.expand_path(core) == File.expand_path(File.join(HERE, "core")) ? "$(srcdir)/core" : core
  core_srcs = polytel_core_sources(core)
  # mkmf compiles bare file names found through VPATH: one VPATH entry per source folder.
  $srcs = ["polytel_ext.c"] + core_srcs.map { |f| File.basename(f) }
  core_srcs.map { |f| File.dirname(f) }.uniq.each { |d| $VPATH << "#{srcdir_core}/#{d}" }
  $INCFLAGS << " -I#{srcdir_core}/include -I#{srcdir_core}/src"
  $defs << "-D_GNU_SOURCE" << "-DPOLYTEL_WITH_UV=1"
end

$CFLAGS << " -std=gnu11"
# Only Init_polytel_ext leaves the extension: the core's symbols stay private to it.
File.write("polytel_ext.map", "{ global: Init_polytel_ext; local: *; };\n")
$DLDFLAGS << " -Wl,--version-script=polytel_ext.map" if try_ldflags("-Wl,--version-script=polytel_ext.map")
have_func("rb_ext_ractor_safe", "ruby.h")
# Ruby 3.1's execution context, for Polytel.span's look at its block's parameters (polytel_ext.c,
# pt_block_peek: it checks itself at load and is off when this does not link).
if RUBY_VERSION.start_with?("3.1.") && try_link(<<~SRC)
  #include <ruby.h>
  extern __thread void *ruby_current_ec __attribute__((tls_model("initial-exec")));
  int main(void) { return ruby_current_ec != 0; }
SRC
  $defs << "-DPT_HAVE_CURRENT_EC"
end

create_makefile("polytel/polytel_ext")
