#include "catalog/sqlite.h"

#include <sqlite3.h>

#include "catalog/env_vfs.h"

namespace tessera::catalog {
namespace {

// SQLite's message, with the file error behind it when an Env VFS had one
// ("disk I/O error (cannot fsync '/s/catalog.db-journal': Input/output error)").
std::string message_of(sqlite3* db) {
  std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
  const std::string cause = take_vfs_error();
  if (!cause.empty()) msg += " (" + cause + ")";
  return msg;
}

}  // namespace

Db::Db(const std::string& uri, int flags, const char* vfs) {
  int rc = sqlite3_open_v2(uri.c_str(), &db_, flags | SQLITE_OPEN_URI, vfs);
  if (rc != SQLITE_OK) {
    std::string msg = db_ ? message_of(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    throw CatalogError("cannot open catalog '" + uri + "': " + msg);
  }
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, 60'000);
}

Db::~Db() {
  if (db_) sqlite3_close_v2(db_);
}

void Db::exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    if (const std::string cause = take_vfs_error(); !cause.empty()) msg += " (" + cause + ")";
    throw CatalogError("catalog: " + msg + " (in: " + sql.substr(0, 120) + ")");
  }
}

Statement Db::prepare(std::string_view sql) { return Statement(db_, sql); }

int64_t Db::pragma_int(const std::string& name) {
  Statement st(db_, "PRAGMA " + name);
  return st.step() ? st.column_int(0) : 0;
}

int64_t Db::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }
int64_t Db::changes() const { return sqlite3_changes(db_); }

Statement::Statement(sqlite3* db, std::string_view sql) : db_(db) {
  if (sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &st_, nullptr) != SQLITE_OK)
    throw CatalogError("catalog: " + message_of(db) + " (in: " + std::string(sql.substr(0, 120)) + ")");
}

Statement::~Statement() {
  if (st_) sqlite3_finalize(st_);
}

void Statement::fail(const std::string& what) const {
  const char* sql = sqlite3_sql(st_);
  throw CatalogError("catalog: " + what + ": " + message_of(db_) + " (in: " +
                     std::string(sql ? sql : "").substr(0, 120) + ")");
}

Statement& Statement::bind(int i, int64_t v) {
  if (sqlite3_bind_int64(st_, i, v) != SQLITE_OK) fail("bind");
  return *this;
}
Statement& Statement::bind(int i, double v) {
  if (sqlite3_bind_double(st_, i, v) != SQLITE_OK) fail("bind");
  return *this;
}
Statement& Statement::bind(int i, std::string_view t) {
  if (sqlite3_bind_text(st_, i, t.data(), static_cast<int>(t.size()), SQLITE_TRANSIENT) != SQLITE_OK) fail("bind");
  return *this;
}
Statement& Statement::bind_blob(int i, const void* p, size_t n) {
  if (sqlite3_bind_blob64(st_, i, n ? p : "", n, SQLITE_TRANSIENT) != SQLITE_OK) fail("bind");
  return *this;
}
Statement& Statement::bind_blob_static(int i, const void* p, size_t n) {
  if (sqlite3_bind_blob64(st_, i, n ? p : "", n, SQLITE_STATIC) != SQLITE_OK) fail("bind");
  return *this;
}
Statement& Statement::bind_null(int i) {
  if (sqlite3_bind_null(st_, i) != SQLITE_OK) fail("bind");
  return *this;
}

bool Statement::step() {
  int rc = sqlite3_step(st_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  fail("step");
}

void Statement::run() {
  while (step()) {
  }
  reset();
}

bool Statement::try_run() {
  int rc;
  while ((rc = sqlite3_step(st_)) == SQLITE_ROW) {
  }
  if (rc == SQLITE_DONE) {
    reset();
    return true;
  }
  if ((rc & 0xff) != SQLITE_CONSTRAINT) fail("step");
  reset();
  return false;
}

void Statement::reset() {
  sqlite3_reset(st_);
  sqlite3_clear_bindings(st_);
}

int64_t Statement::column_int(int i) const { return sqlite3_column_int64(st_, i); }
double Statement::column_double(int i) const { return sqlite3_column_double(st_, i); }
std::string Statement::column_text(int i) const { return std::string(column_text_view(i)); }
std::string Statement::column_blob(int i) const { return std::string(column_blob_view(i)); }
std::string_view Statement::column_text_view(int i) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st_, i));
  return p ? std::string_view(p, static_cast<size_t>(sqlite3_column_bytes(st_, i))) : std::string_view();
}
std::string_view Statement::column_blob_view(int i) const {
  const auto* p = static_cast<const char*>(sqlite3_column_blob(st_, i));
  return p ? std::string_view(p, static_cast<size_t>(sqlite3_column_bytes(st_, i))) : std::string_view();
}
int Statement::column_type(int i) const { return sqlite3_column_type(st_, i); }

std::string values_sql(std::string_view head, size_t columns, size_t rows) {
  std::string row = "(";
  for (size_t c = 0; c < columns; ++c) row += c ? ", ?" : "?";
  row += ")";
  std::string sql(head);
  sql += " VALUES ";
  for (size_t r = 0; r < rows; ++r) (sql += r ? ", " : "") += row;
  return sql;
}

ReadScope::ReadScope(Db& db) : db_(db) {
  if (sqlite3_get_autocommit(db_.raw()) == 0) return;  // inside the caller's transaction
  db_.exec("BEGIN");
  began_ = true;
}

ReadScope::~ReadScope() {
  if (!began_) return;
  try {
    db_.exec("COMMIT");  // read-only: nothing to write, only the lock to drop
  } catch (...) {
  }
}

Transaction::Transaction(Db& db, Kind kind) : db_(db) {
  db_.exec(kind == Kind::kWrite ? "BEGIN IMMEDIATE" : "BEGIN");
  open_ = true;
}

Transaction::~Transaction() {
  if (!open_) return;
  try {
    db_.exec("ROLLBACK");
  } catch (...) {
  }
}

void Transaction::commit() {
  db_.exec("COMMIT");
  open_ = false;
}

}  // namespace tessera::catalog
