// A thin RAII layer over the SQLite C API. Errors become CatalogError with
// SQLite's message and the statement that failed.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "tessera/error.h"

struct sqlite3;
struct sqlite3_stmt;

namespace tessera::catalog {

// A tessera::Error, so that callers (and the Python package, which maps
// tessera::Error to tessera.Error) catch it with the library's other errors.
class CatalogError : public Error {
 public:
  using Error::Error;
};

class Statement;

class Db {
 public:
  // `uri` is a file name or file: URI; flags are sqlite3_open_v2 flags;
  // `vfs` names a registered SQLite VFS (nullptr: the default one).
  Db(const std::string& uri, int flags, const char* vfs = nullptr);
  ~Db();
  Db(Db&& o) noexcept : db_(o.db_) { o.db_ = nullptr; }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  void exec(const std::string& sql);
  Statement prepare(std::string_view sql);
  int64_t pragma_int(const std::string& name);
  int64_t last_insert_rowid() const;
  int64_t changes() const;  // rows changed by the last INSERT, UPDATE or DELETE
  sqlite3* raw() const { return db_; }

 private:
  sqlite3* db_ = nullptr;
};

class Statement {
 public:
  Statement(sqlite3* db, std::string_view sql);
  ~Statement();
  Statement(Statement&& o) noexcept : db_(o.db_), st_(o.st_) { o.st_ = nullptr; }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Parameters are 1-based, as in SQLite.
  Statement& bind(int i, int64_t v);
  Statement& bind(int i, double v);
  Statement& bind(int i, std::string_view text);
  Statement& bind_blob(int i, const void* p, size_t n);
  // Not copied: `p` must stay valid until the statement is reset or rebound.
  Statement& bind_blob_static(int i, const void* p, size_t n);
  Statement& bind_null(int i);

  bool step();   // true while a row is available
  void run();    // step to completion (for statements without rows)
  // run(), except that a constraint violation (a UNIQUE or PRIMARY KEY
  // conflict) returns false instead of throwing. The statement's changes are
  // then undone (ON CONFLICT ABORT), the transaction's earlier ones kept.
  bool try_run();
  void reset();  // ready to bind and run again

  int64_t column_int(int i) const;
  double column_double(int i) const;
  std::string column_text(int i) const;
  std::string column_blob(int i) const;
  // The same bytes without a copy: valid until the next step() or reset().
  std::string_view column_text_view(int i) const;
  std::string_view column_blob_view(int i) const;
  int column_type(int i) const;  // SQLITE_INTEGER, SQLITE_FLOAT, ...

 private:
  [[noreturn]] void fail(const std::string& what) const;
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
};

// Many-row statements: a million single-row INSERTs cost about twice the
// CPU of the same rows 64 to a statement.
constexpr size_t kRowsPerStatement = 64;

// `head` followed by " VALUES (?, ?), (?, ?)" for `rows` rows of `columns`
// parameters each.
std::string values_sql(std::string_view head, size_t columns, size_t rows);

// One transaction for the object's lifetime: kWrite is BEGIN IMMEDIATE (takes
// the database's write lock at once, so what is read inside cannot change
// before COMMIT); kRead is a plain BEGIN (a consistent snapshot for reads).
// Rolls back on destruction unless commit() ran.
class Transaction {
 public:
  enum class Kind { kRead, kWrite };
  Transaction(Db& db, Kind kind);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  void commit();  // REQUIRES: not committed yet

 private:
  Db& db_;
  bool open_ = false;
};

// A read transaction for a run of queries unless one is already open: one
// shared lock (and one check of the file) instead of one per statement.
class ReadScope {
 public:
  explicit ReadScope(Db& db);
  ~ReadScope();
  ReadScope(const ReadScope&) = delete;
  ReadScope& operator=(const ReadScope&) = delete;

 private:
  Db& db_;
  bool began_ = false;
};

}  // namespace tessera::catalog
