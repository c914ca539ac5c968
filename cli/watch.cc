// `llmctl watch`: follows the WatchStatus stream. On a terminal it redraws a full-screen
// view (alternate screen, no scrolling, fitted to the window) and quits on `q`; otherwise it
// prints one plain snapshot per update so the output can be logged or piped.
// A reader thread owns the blocking stream; the main thread owns the terminal and keyboard,
// so a key press is handled within ~50 ms even when the server is slow.
#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <condition_variable>
#include <ctime>
#include <deque>
#include <mutex>
#include <sstream>
#include <thread>

#include "cli/cli_internal.h"

namespace llmgw::cli {
namespace {

using admin::v1::StatusUpdate;

// Puts the keyboard into non-canonical no-echo mode and the screen into the alternate
// buffer; restores both on destruction, also on error paths.
class TerminalSession {
 public:
  TerminalSession(int in_fd, std::ostream& out) : in_fd_(in_fd), out_(out) {
    if (in_fd_ >= 0 && isatty(in_fd_) && tcgetattr(in_fd_, &saved_) == 0) {
      termios raw = saved_;
      raw.c_lflag &= ~(ICANON | ECHO | ISIG);  // ^C arrives as a byte, so the screen is restored
      raw.c_cc[VMIN] = 0;
      raw.c_cc[VTIME] = 0;
      restore_ = tcsetattr(in_fd_, TCSANOW, &raw) == 0;
    }
    out_ << "\x1b[?1049h\x1b[?25l" << std::flush;  // alternate screen, hide cursor
  }
  ~TerminalSession() {
    out_ << "\x1b[?25h\x1b[?1049l" << std::flush;
    if (restore_) tcsetattr(in_fd_, TCSANOW, &saved_);
  }

 private:
  int in_fd_;
  std::ostream& out_;
  termios saved_{};
  bool restore_ = false;
};

std::string Cut(std::string s, size_t cols) {
  if (s.size() > cols) s.resize(cols);
  return s;
}

// The backends table made to fit `cols`: the ID and MODEL columns give way (widest first,
// down to 8 characters) rather than the numbers being cut off. Shortened names keep their
// tail, where backends and models differ (port, model size), marked with a leading '~'.
std::vector<std::string> FittedBackendLines(
    const google::protobuf::RepeatedPtrField<admin::v1::Backend>& backends, size_t cols) {
  Table t = BackendsTable(backends, /*compact=*/true);
  std::vector<size_t> width(t.headers.size());
  for (size_t i = 0; i < width.size(); ++i) {
    width[i] = t.headers[i].size();
    for (const auto& r : t.rows) width[i] = std::max(width[i], r[i].size());
  }
  auto total = [&] {
    size_t w = 2 * (width.size() - 1);
    for (size_t x : width) w += x;
    return w;
  };
  constexpr size_t kMinName = 8;
  while (total() > cols) {
    size_t col = width[0] >= width[1] ? 0 : 1;
    if (width[col] <= kMinName) break;  // the line is cut at the edge instead
    --width[col];
  }
  for (auto& r : t.rows)
    for (size_t col : {0, 1})
      if (r[col].size() > width[col]) {
        // Built by appends: `"~" + str.substr(...)` trips GCC 12's false -Wrestrict at -O3.
        std::string cut(1, '~');
        cut.append(r[col], r[col].size() - (width[col] - 1));
        r[col] = std::move(cut);
      }
  std::stringstream s;
  t.Render(s, cols);
  std::vector<std::string> lines;
  for (std::string line; std::getline(s, line);) lines.push_back(line);
  return lines;
}

std::string Summary(const admin::v1::GetStatusResponse& s) {
  return "gen " + std::to_string(s.snapshot_generation()) + "  backends " +
         std::to_string(s.backends_healthy()) + "/" + std::to_string(s.backends_total()) +
         " healthy  req/s " + FormatDouble(s.requests_per_second(), 1) + "  err/s " +
         FormatDouble(s.errors_per_second(), 2) + "  active " +
         std::to_string(s.active_requests());
}

std::string UtcNow() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void PrintSnapshot(const StatusUpdate& u, std::ostream& out) {
  out << "--- " << UtcNow() << "  " << Summary(u.status()) << "\n";
  if (u.backends().empty()) out << "no backends\n";
  else BackendsTable(u.backends()).Render(out);
  out << "\n" << std::flush;
}

void DrawFrame(const std::vector<std::string>& lines, std::ostream& out) {
  // Home, then overwrite each line and clear its tail; no newline after the last line so the
  // bottom row never scrolls the screen; finally clear whatever an older frame left below.
  std::string s = "\x1b[H";
  for (size_t i = 0; i < lines.size(); ++i) {
    s += lines[i];
    s += "\x1b[K";
    if (i + 1 < lines.size()) s += "\r\n";
  }
  s += "\x1b[J";
  out << s << std::flush;
}

void TerminalSize(int fd, size_t* rows, size_t* cols) {
  winsize ws{};
  *rows = 24;
  *cols = 80;
  if (fd >= 0 && ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
    *rows = ws.ws_row;
    *cols = ws.ws_col;
  }
}

}  // namespace

std::vector<std::string> RenderWatchFrame(const StatusUpdate& u, size_t rows, size_t cols,
                                          const std::string& addr) {
  const auto& s = u.status();
  std::vector<std::string> lines;
  lines.push_back(Cut("llmctl watch " + addr + "  " + s.instance() + " " + s.version() + "  up " +
                          FormatDuration(s.uptime_seconds()) + "  (q quits)",
                      cols));
  lines.push_back(Cut(Summary(s) + "  dp " +
                          (s.dataplane_alive() ? std::to_string(s.dataplane_threads()) + " thr"
                                               : std::string("DOWN")),
                      cols));
  lines.push_back("");
  if (u.backends().empty()) {
    lines.push_back("no backends");
  } else {
    auto table = FittedBackendLines(u.backends(), cols);
    size_t room = rows > lines.size() ? rows - lines.size() : 0;
    if (table.size() <= room) {
      lines.insert(lines.end(), table.begin(), table.end());
    } else if (room >= 2) {
      size_t shown = room - 1;  // header + rows, and one line saying how many are hidden
      lines.insert(lines.end(), table.begin(), table.begin() + shown);
      lines.push_back(Cut("... " + std::to_string(table.size() - shown) +
                              " more backends (enlarge the window)", cols));
    }
  }
  if (lines.size() > rows) lines.resize(rows);
  return lines;
}

int RunWatch(admin::v1::Admin::Stub& stub, const Options& opts, const WatchOptions& wopts,
             std::ostream& out, std::ostream& err, const Env& env) {
  const bool tty = env.out_fd >= 0 && isatty(env.out_fd);
  grpc::ClientContext ctx;
  AddAuth(&ctx, opts);
  // The stream is open-ended; with --count it gets a deadline, and in every case the
  // watchdog below gives up when no update arrives in time.
  const auto interval = std::chrono::milliseconds(wopts.interval_ms);
  if (wopts.count > 0)
    ctx.set_deadline(std::chrono::system_clock::now() + opts.timeout + 2 * wopts.count * interval);
  const auto watchdog = opts.timeout + 3 * interval;

  admin::v1::WatchStatusRequest req;
  req.set_interval_ms(wopts.interval_ms);
  auto reader = stub.WatchStatus(&ctx, req);

  std::mutex mu;
  std::condition_variable cv;
  std::deque<StatusUpdate> pending;
  bool ended = false;
  grpc::Status final_status;
  std::thread reader_thread([&] {
    StatusUpdate u;
    while (reader->Read(&u)) {
      std::lock_guard<std::mutex> lock(mu);
      pending.push_back(u);
      cv.notify_one();
    }
    grpc::Status st = reader->Finish();
    std::lock_guard<std::mutex> lock(mu);
    ended = true;
    final_status = st;
    cv.notify_one();
  });

  int rc = kExitOk;
  bool stream_ended = false, quit = false, stalled = false;
  int shown = 0;
  {
    std::unique_ptr<TerminalSession> term;
    if (tty) term = std::make_unique<TerminalSession>(env.in_fd, out);
    auto last_update = std::chrono::steady_clock::now();
    StatusUpdate latest;
    bool have_latest = false;
    while (!quit) {
      if (tty && env.in_fd >= 0) {
        pollfd p{env.in_fd, POLLIN, 0};
        if (poll(&p, 1, 50) > 0) {
          char buf[64];
          ssize_t n = read(env.in_fd, buf, sizeof buf);
          if (n == 0 && !isatty(env.in_fd)) quit = true;  // keyboard pipe closed
          for (ssize_t i = 0; i < n; ++i)
            if (buf[i] == 'q' || buf[i] == 'Q' || buf[i] == 3 /* ^C in raw mode */) quit = true;
        }
      }
      std::deque<StatusUpdate> batch;
      {
        std::unique_lock<std::mutex> lock(mu);
        if (!(tty && env.in_fd >= 0))
          cv.wait_for(lock, std::chrono::milliseconds(50), [&] { return !pending.empty() || ended; });
        batch.swap(pending);
        stream_ended = ended;
      }
      for (auto& u : batch) {
        if (quit || (wopts.count > 0 && shown >= wopts.count)) break;
        ++shown;
        last_update = std::chrono::steady_clock::now();
        if (tty) {
          latest = std::move(u);
          have_latest = true;
        } else if (opts.output == OutputFormat::kJson) {
          out << ToJson(u, /*pretty=*/false) << "\n" << std::flush;  // one JSON object a line
        } else {
          PrintSnapshot(u, out);
        }
      }
      if (tty && have_latest) {
        // Size is re-read every frame, so resizing the window needs no SIGWINCH handler.
        size_t rows, cols;
        TerminalSize(env.out_fd, &rows, &cols);
        DrawFrame(RenderWatchFrame(latest, rows, cols, opts.addr), out);
        have_latest = false;
      }
      if (wopts.count > 0 && shown >= wopts.count) break;
      if (stream_ended) break;
      if (std::chrono::steady_clock::now() - last_update > watchdog) {
        stalled = true;
        break;
      }
    }
    ctx.TryCancel();
    reader_thread.join();
  }  // terminal restored here, before any error line is printed

  bool done_by_us = quit || (wopts.count > 0 && shown >= wopts.count);
  if (stalled) {
    err << "llmctl: llmcd at " << opts.addr << " sent no WatchStatus update within "
        << FormatDouble(std::chrono::duration<double>(watchdog).count(), 1) << "s\n";
    rc = kExitUnreachable;
  } else if (!done_by_us && stream_ended && !final_status.ok()) {
    rc = ReportRpcError(final_status, opts, "WatchStatus", err);
  }
  return rc;
}

}  // namespace llmgw::cli
