#include "json.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace tessera::cli {

std::string json_quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

Json Json::string(std::string_view s) { return Json(Kind::kScalar, json_quote(s)); }
Json Json::number(int64_t n) { return Json(Kind::kScalar, std::to_string(n)); }
Json Json::number(uint64_t n) { return Json(Kind::kScalar, std::to_string(n)); }
Json Json::real(double d) {
  if (!std::isfinite(d)) return null();
  char buf[32];
  for (int precision = 1; precision <= 17; ++precision) {  // shortest that round-trips
    std::snprintf(buf, sizeof buf, "%.*g", precision, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  return Json(Kind::kScalar, buf);
}
Json Json::null() { return Json(Kind::kScalar, "null"); }
Json Json::boolean(bool b) { return Json(Kind::kScalar, b ? "true" : "false"); }
Json Json::array() { return Json(Kind::kArray); }
Json Json::object() { return Json(Kind::kObject); }

Json& Json::push(Json element) {
  members_.emplace_back("", std::move(element));
  return *this;
}

Json& Json::set(std::string_view key, Json value) {
  members_.emplace_back(std::string(key), std::move(value));
  return *this;
}

void Json::write(std::ostream& out, int depth) const {
  if (kind_ == Kind::kScalar) {
    out << scalar_;
    return;
  }
  const char* open = kind_ == Kind::kArray ? "[" : "{";
  const char* close = kind_ == Kind::kArray ? "]" : "}";
  const bool flat = kind_ == Kind::kArray && std::all_of(members_.begin(), members_.end(), [](const auto& m) {
                      return m.second.kind_ == Kind::kScalar;
                    });
  if (members_.empty() || flat) {
    out << open;
    for (size_t i = 0; i < members_.size(); ++i) {
      if (i) out << ", ";
      members_[i].second.write(out, depth + 1);
    }
    out << close;
    return;
  }
  const std::string indent(2 * (depth + 1), ' ');
  out << open << '\n';
  for (size_t i = 0; i < members_.size(); ++i) {
    out << indent;
    if (kind_ == Kind::kObject) out << json_quote(members_[i].first) << ": ";
    members_[i].second.write(out, depth + 1);
    out << (i + 1 < members_.size() ? ",\n" : "\n");
  }
  out << std::string(2 * depth, ' ') << close;
}

Json shape_json(const std::vector<int64_t>& shape) {
  Json out = Json::array();
  for (int64_t d : shape) out.push(Json::number(d));
  return out;
}

}  // namespace tessera::cli
