#include "web/http_server.hpp"

#include "pipeline/foundation/files.hpp"
#include "pipeline/foundation/log.hpp"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>

namespace dcmstreams::web {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

constexpr const char* component = "web";

class session : public std::enable_shared_from_this<session> {
public:
  static constexpr std::uint32_t header_limit = 8192; // request line and header fields
  session(tcp::socket socket, const server_settings& settings, const http_handler& handler)
      : stream_(std::move(socket)), settings_(settings), handler_(handler) {}

  void run() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&session::read_header, shared_from_this()));
  }

private:
  void read_header() {
    header_parser_.emplace();
    header_parser_->header_limit(header_limit);
    // Which limit applies is known only once the target is read: the larger
    // one here, the right one in on_header.
    header_parser_->body_limit(std::max(settings_.body_limit, settings_.upload_limit));
    stream_.expires_after(std::chrono::seconds(settings_.read_timeout_s));
    http::async_read_header(stream_, buffer_, *header_parser_,
                            beast::bind_front_handler(&session::on_header, shared_from_this()));
  }

  void on_header(beast::error_code ec, std::size_t) {
    // A Content-Length above the limit is refused as soon as the header is read.
    if (ec == http::error::body_limit)
      return refuse_large_body();
    if (ec == http::error::header_limit)
      return refuse_large_header();
    if (ec)
      return close(ec);
    auto& header = header_parser_->get();
    expects_continue_ = beast::iequals(header[http::field::expect], "100-continue");
    std::string target{header.target()};
    std::string path;
    std::map<std::string, std::string> query;
    parse_target(target, path, query);
    // Uploads can be large: their body goes to a file, not to memory.
    auto stow = [&](const std::string& prefix) {
      const std::string suffix = "/studies";
      return path.rfind(prefix, 0) == 0 && path.size() > prefix.size() + suffix.size() &&
             path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    bool upload =
        std::find(settings_.upload_paths.begin(), settings_.upload_paths.end(), path) !=
            settings_.upload_paths.end() ||
        std::any_of(settings_.upload_prefixes.begin(), settings_.upload_prefixes.end(), stow);
    if (upload && header.method() == http::verb::post) {
      upload_parser_.emplace(std::move(*header_parser_));
      upload_parser_->body_limit(settings_.upload_limit);
      static std::atomic<unsigned> sequence{0};
      upload_file_ = settings_.upload_dir /
                     ("upload-" + std::to_string(::getpid()) + "-" + std::to_string(sequence++));
      create_directories(settings_.upload_dir, false);
      beast::error_code open_error;
      upload_parser_->get().body().open(upload_file_.c_str(), beast::file_mode::write, open_error);
      if (open_error)
        return respond_now(error_response(500, "cannot store the upload: " + open_error.message()),
                           false);
      // Beast reads as much as the buffer has room for: with the few hundred
      // bytes left after the header, a 25 MB body took 50,000 reads (22 ms of
      // CPU per 512 KB instance); 64 KB at a time it takes 400.
      buffer_.reserve(upload_read_bytes);
      return after_continue([self = shared_from_this()] {
        http::async_read(self->stream_, self->buffer_, *self->upload_parser_,
                         beast::bind_front_handler(&session::on_upload, self));
      });
    }
    if (auto length = header_parser_->content_length(); length && *length > settings_.body_limit)
      return refuse_large_body();
    string_parser_.emplace(std::move(*header_parser_));
    string_parser_->body_limit(settings_.body_limit);
    after_continue([self = shared_from_this()] {
      http::async_read(self->stream_, self->buffer_, *self->string_parser_,
                       beast::bind_front_handler(&session::on_body, self));
    });
  }

  // A client that sent "Expect: 100-continue" waits for this before its body
  // (curl for bodies above 1 MB, up to a second, per request: a STOW-RS client
  // would wait a second per request); the refusals above answer at once.
  template <class ReadBody> void after_continue(ReadBody read_body) {
    if (!expects_continue_)
      return read_body();
    static constexpr char interim[] = "HTTP/1.1 100 Continue\r\n\r\n";
    net::async_write(stream_, net::buffer(interim, sizeof interim - 1),
                     [self = shared_from_this(), read_body](beast::error_code ec, std::size_t) {
                       if (ec)
                         return self->close(ec);
                       read_body();
                     });
  }

  template <class Message> http_request make_request(const Message& message) {
    http_request request;
    request.method = std::string(message.method_string());
    request.target = std::string(message.target());
    parse_target(request.target, request.path, request.query);
    for (auto& field : message) {
      request.headers[lower_case(std::string{field.name_string()})] = std::string(field.value());
    }
    beast::error_code ignored;
    auto endpoint = stream_.socket().remote_endpoint(ignored);
    request.remote = endpoint.address().to_string();
    keep_alive_ = message.keep_alive();
    return request;
  }

  // The parser stops at its header limit (8 KB); which part was too large
  // decides the status: the request line (414) or the header fields (431).
  // The parser consumes the lines it has parsed, so the request line was
  // whole if it set the target.
  void refuse_large_header() {
    auto limit = std::to_string(header_limit) + " bytes";
    if (header_parser_->get().target().empty())
      return respond_now(error_response(414, "the request target (URL) is longer than " + limit),
                         false);
    respond_now(
        error_response(431, "the request's header fields are larger than " + limit + " in all"),
        false);
  }

  void refuse_large_body() {
    respond_now(error_response(413, "the request body is larger than " +
                                        std::to_string(settings_.body_limit) + " bytes"),
                false);
  }

  void on_body(beast::error_code ec, std::size_t) {
    if (ec == http::error::body_limit)
      return refuse_large_body();
    if (ec)
      return close(ec);
    auto message = string_parser_->release();
    auto request = make_request(message);
    request.body = std::move(message.body());
    dispatch(std::move(request));
  }

  void on_upload(beast::error_code ec, std::size_t) {
    if (ec == http::error::body_limit) {
      std::remove(upload_file_.c_str());
      return respond_now(error_response(413, "the upload is larger than " +
                                                 std::to_string(settings_.upload_limit) + " bytes"),
                         false);
    }
    if (ec) {
      std::remove(upload_file_.c_str());
      return close(ec);
    }
    auto message = upload_parser_->release();
    message.body().close();
    buffer_.shrink_to_fit(); // an idle kept-alive connection holds no 64 KB
    auto request = make_request(message);
    request.body_file = upload_file_.string();
    dispatch(std::move(request));
  }

  void dispatch(http_request request) {
    // The handler answers from any thread, maybe much later; the answer is
    // written on this session's strand.
    auto self = shared_from_this();
    // A body the handler did not take (it answered before reading it: a
    // wrong AE title, a refused login) goes when the answer does; names are
    // never reused, so this can only be this request's file.
    auto body_file = request.body_file;
    handler_(std::move(request), [self, body_file](http_response response) {
      if (!body_file.empty())
        std::remove(body_file.c_str());
      net::post(self->stream_.get_executor(), [self, response = std::move(response)]() mutable {
        self->respond_now(std::move(response), self->keep_alive_);
      });
    });
  }

  void respond_now(http_response response, bool keep_alive) {
    keep_alive_ = keep_alive;
    if (response.stream)
      return start_stream(std::move(response));
    auto message = std::make_shared<http::response<http::string_body>>();
    message->result(response.status);
    message->version(11);
    message->set(http::field::server, "dcmstreams");
    message->set(http::field::content_type, response.content_type);
    for (auto& [name, value] : response.headers)
      message->set(name, value);
    message->body() = std::move(response.body);
    message->keep_alive(keep_alive_);
    message->prepare_payload();
    stream_.expires_after(std::chrono::seconds(settings_.read_timeout_s));
    http::async_write(stream_, *message,
                      [self = shared_from_this(), message](beast::error_code ec, std::size_t) {
                        self->after_write(ec, message->need_eof());
                      });
  }

  void after_write(beast::error_code ec, bool need_eof) {
    if (ec)
      return close(ec);
    if (need_eof || !keep_alive_)
      return shutdown();
    buffer_.consume(buffer_.size());
    read_header();
  }

  // A chunked response fed by a body_stream, piece by piece.
  void start_stream(http_response response) {
    stream_source_ = response.stream;
    auto header = std::make_shared<http::response<http::empty_body>>();
    header->result(response.status);
    header->version(11);
    header->set(http::field::server, "dcmstreams");
    header->set(http::field::content_type, response.content_type);
    for (auto& [name, value] : response.headers)
      header->set(name, value);
    header->chunked(true);
    header->keep_alive(false);
    keep_alive_ = false;
    auto serializer = std::make_shared<http::response_serializer<http::empty_body>>(*header);
    // Streams (downloads, the event feed) may be silent for long: no timeout.
    stream_.expires_never();
    http::async_write_header(
        stream_, *serializer,
        [self = shared_from_this(), header, serializer](beast::error_code ec, std::size_t) {
          if (ec)
            return self->close(ec);
          self->pull_next();
        });
  }

  void pull_next() {
    auto self = shared_from_this();
    stream_source_->pull([self](std::optional<std::string> piece) {
      net::post(self->stream_.get_executor(), [self, piece = std::move(piece)]() mutable {
        self->write_piece(std::move(piece));
      });
    });
  }

  void write_piece(std::optional<std::string> piece) {
    auto self = shared_from_this();
    if (!piece) {
      net::async_write(stream_, http::make_chunk_last(),
                       [self](beast::error_code, std::size_t) { self->shutdown(); });
      return;
    }
    if (piece->empty())
      return pull_next();
    auto data = std::make_shared<std::string>(std::move(*piece));
    net::async_write(stream_, http::make_chunk(net::buffer(*data)),
                     [self, data](beast::error_code ec, std::size_t) {
                       if (ec) {
                         self->stream_source_->cancel();
                         return self->close(ec);
                       }
                       self->pull_next();
                     });
  }

  void close(beast::error_code ec) {
    if (ec && ec != http::error::end_of_stream && ec != net::error::operation_aborted &&
        ec != beast::error::timeout && ec != net::error::connection_reset && ec != net::error::eof)
      log::debug(component, "connection closed: " + ec.message());
    if (stream_source_)
      stream_source_->cancel();
    shutdown();
  }

  void shutdown() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    // Read what the client still sends (the rest of a refused body) until it
    // closes: closing a socket with unread data resets the connection, and
    // the client would lose the answer that says why.
    drain();
  }

  void drain() {
    stream_.expires_after(std::chrono::seconds(settings_.read_timeout_s));
    stream_.async_read_some(net::buffer(discard_),
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              if (!ec)
                                self->drain();
                            });
  }

  beast::tcp_stream stream_;
  static constexpr std::size_t upload_read_bytes = 64 << 10;
  beast::flat_buffer buffer_;
  const server_settings& settings_;
  const http_handler& handler_;
  std::optional<http::request_parser<http::empty_body>> header_parser_;
  std::optional<http::request_parser<http::string_body>> string_parser_;
  std::optional<http::request_parser<http::file_body>> upload_parser_;
  std::filesystem::path upload_file_;
  bool expects_continue_ = false; // the request's header asked for 100 Continue
  std::shared_ptr<body_stream> stream_source_;
  bool keep_alive_ = true;
  std::array<char, 16384> discard_;
};

} // namespace

struct http_server::impl {
  server_settings settings;
  http_handler handler;
  net::io_context io;
  std::optional<tcp::acceptor> acceptor;
  std::vector<std::thread> threads;
  std::uint16_t port = 0;
  std::optional<net::steady_timer> accept_pause;
  bool said_accept_fails = false;

  void accept() {
    acceptor->async_accept(net::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted)
        return;
      if (!ec) {
        said_accept_fails = false;
        std::make_shared<session>(std::move(socket), settings, handler)->run();
        accept();
        return;
      }
      // Out of descriptors (EMFILE) the connection stays queued and every
      // accept fails at once: accepting again at once would spin a core
      // until a descriptor is free. Pause, and say so once.
      if (!said_accept_fails) {
        said_accept_fails = true;
        log::warning("web", "cannot accept HTTP connections: " + ec.message() +
                                "; trying again every 100 ms (raise LimitNOFILE if this "
                                "repeats)");
      }
      accept_pause->expires_after(std::chrono::milliseconds(100));
      accept_pause->async_wait([this](beast::error_code waited) {
        if (waited != net::error::operation_aborted)
          accept();
      });
    });
  }
};

http_server::http_server(server_settings settings, http_handler handler)
    : impl_(std::make_unique<impl>()) {
  impl_->settings = std::move(settings);
  impl_->handler = std::move(handler);
}

http_server::~http_server() {
  stop();
}

status http_server::start() {
  auto& s = impl_->settings;
  std::string where = s.bind + ":" + std::to_string(s.port);
  beast::error_code ec;
  auto address = net::ip::make_address(s.bind, ec);
  if (ec)
    return failure{ec::invalid_config,
                   "web.bind \"" + s.bind + "\" is not an IP address such as 127.0.0.1"};
  tcp::endpoint endpoint{address, s.port};
  impl_->acceptor.emplace(impl_->io);
  impl_->acceptor->open(endpoint.protocol(), ec);
  if (!ec)
    impl_->acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec)
    impl_->acceptor->bind(endpoint, ec);
  if (!ec)
    impl_->acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    std::string hint = ec == net::error::address_in_use
                           ? "; another program listens there: stop it or set web.port / --web-port"
                           : "";
    return failure{ec::network_error,
                   "cannot listen for HTTP on " + where + ": " + ec.message() + hint};
  }
  impl_->port = impl_->acceptor->local_endpoint().port();
  impl_->accept_pause.emplace(impl_->io);
  impl_->accept();
  for (int i = 0; i < std::max(1, s.threads); ++i)
    impl_->threads.emplace_back([this] { impl_->io.run(); });
  log::info(component, "serving HTTP on " + s.bind + ":" + std::to_string(impl_->port));
  return std::nullopt;
}

void http_server::stop() {
  if (impl_->threads.empty())
    return;
  net::post(impl_->io, [this] {
    beast::error_code ignored;
    if (impl_->acceptor)
      impl_->acceptor->close(ignored);
    if (impl_->accept_pause)
      impl_->accept_pause->cancel();
  });
  impl_->io.stop();
  for (auto& t : impl_->threads)
    t.join();
  impl_->threads.clear();
}

std::uint16_t http_server::port() const {
  return impl_->port;
}

} // namespace dcmstreams::web
