// Typed results of tessera._core (SaveResult, LoadResult, CheckpointSummary,
// EntryInfo, VerifyReport, ...): Python classes over C++ structs, each with
//   - read-only attributes, listed in the class's `_fields`;
//   - a keyword-only constructor (Python builds some: tessera.load's
//     LoadResult, a DCP writer's summed SaveResult); omitted fields keep the
//     struct's defaults;
//   - ==, repr, pickling (DCP pickles writers that hold their statistics),
//     and to_dict() (plain dicts and lists, e.g. for json.dumps);
//   - DEPRECATED, for one release: the dict-style access the results had
//     when they were dicts (r["written_bytes"], "metadata" in r, r.get(k),
//     r.keys(), r.items(), dict(r); not r.values(): some records have a field of
//     that name). Each use warns
//     (DeprecationWarning). A field whose value is None (a checkpoint's
//     metadata not asked for, a diff without value statistics) is absent
//     from that view, as the key was absent from the dict.
#pragma once

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace tessera_py {

namespace py = pybind11;

// What every record class shares, kept by its methods.
struct RecordFields {
  std::string cls;                  // the Python class name, for messages
  std::vector<std::string> names;   // attributes, in order (computed ones included)
  std::map<std::string, std::function<void(void*, py::handle)>> setters;  // constructor arguments
};

namespace record_detail {

inline py::object value_of(const py::handle& self, const std::string& name) { return self.attr(name.c_str()); }

// `v` with records turned into dicts and lists into lists, recursively.
inline py::object plain(const py::handle& v) {
  if (py::hasattr(v, "_fields") && py::hasattr(v, "to_dict")) return v.attr("to_dict")();
  if (py::isinstance<py::list>(v) || py::isinstance<py::tuple>(v)) {
    py::list out;
    for (auto x : v) out.append(plain(x));
    return out;
  }
  if (py::isinstance<py::dict>(v)) {
    py::dict out;
    for (auto [k, x] : v.cast<py::dict>()) out[k] = plain(x);
    return out;
  }
  return py::reinterpret_borrow<py::object>(v);
}

inline void deprecated(const RecordFields& f, const std::string& what, const std::string& instead) {
  const std::string msg = "tessera: dict-style access to results is deprecated and goes in the next release: " +
                          f.cls + what + " -> " + instead;
  if (PyErr_WarnEx(PyExc_DeprecationWarning, msg.c_str(), 1) != 0) throw py::error_already_set();
}

// The fields present in the deprecated dict view (those not None).
inline std::vector<std::string> present(const RecordFields& f, const py::handle& self) {
  std::vector<std::string> out;
  for (const auto& n : f.names)
    if (!value_of(self, n).is_none()) out.push_back(n);
  return out;
}

inline bool has_key(const RecordFields& f, const py::handle& self, const py::handle& key) {
  if (!py::isinstance<py::str>(key)) return false;
  const std::string k = key.cast<std::string>();
  for (const auto& n : f.names)
    if (n == k) return !value_of(self, n).is_none();
  return false;
}

}  // namespace record_detail

// Builds one record class: field() per attribute, then done().
template <class T>
class Record {
 public:
  Record(py::module_& m, const char* name, const char* doc)
      : cls_(m, name, doc), f_(std::make_shared<RecordFields>()) {
    f_->cls = name;
  }

  // A data member: an attribute and a constructor argument.
  template <class F>
  Record& field(const char* name, F T::*member, const char* doc = nullptr) {
    cls_.def_readonly(name, member, doc);
    f_->names.push_back(name);
    f_->setters[name] = [member](void* t, py::handle v) { static_cast<T*>(t)->*member = v.cast<F>(); };
    return *this;
  }
  // An attribute read through `get` and set (by the constructor) through `set`.
  template <class Get, class Set>
  Record& property(const char* name, Get get, Set set, const char* doc = nullptr) {
    cls_.def_property_readonly(name, get, doc);
    f_->names.push_back(name);
    f_->setters[name] = [set](void* t, py::handle v) { set(*static_cast<T*>(t), v); };
    return *this;
  }
  // An attribute computed from the others (not a constructor argument).
  template <class Get>
  Record& computed(const char* name, Get get, const char* doc = nullptr) {
    cls_.def_property_readonly(name, get, doc);
    f_->names.push_back(name);
    return *this;
  }

  py::class_<T>& done() {
    auto f = f_;
    py::tuple names(f->names.size());
    for (size_t i = 0; i < f->names.size(); ++i) names[i] = py::str(f->names[i]);
    cls_.attr("_fields") = names;
    auto build = [f](const py::dict& kw) {
      T t{};
      for (auto [k, v] : kw) {
        const std::string key = py::cast<std::string>(k);
        auto it = f->setters.find(key);
        if (it == f->setters.end())
          throw py::type_error(f->cls + "() got an unexpected keyword argument '" + key + "'");
        it->second(&t, v);
      }
      return t;
    };
    cls_.def(py::init([build](const py::kwargs& kw) { return build(kw); }));
    cls_.def("to_dict", [f](const py::object& self) {
      py::dict d;
      for (const auto& n : f->names) d[py::str(n)] = record_detail::plain(record_detail::value_of(self, n));
      return d;
    }, "The fields as a plain dict (records and lists of them converted too), e.g. for json.dumps.");
    cls_.def("__repr__", [f](const py::object& self) {
      std::string s = f->cls + "(";
      for (size_t i = 0; i < f->names.size(); ++i)
        s += (i ? ", " : "") + f->names[i] + "=" +
             py::repr(record_detail::value_of(self, f->names[i])).cast<std::string>();
      return s + ")";
    });
    cls_.def("__eq__", [f](const py::object& self, const py::object& other) -> py::object {
      if (!py::type::of(other).is(py::type::of(self))) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
      for (const auto& n : f->names)
        if (!record_detail::value_of(self, n).equal(record_detail::value_of(other, n))) return py::bool_(false);
      return py::bool_(true);
    });
    cls_.def(py::pickle(
        [f](const py::object& self) {  // the constructor arguments, as a dict
          py::dict d;
          for (const auto& n : f->names)
            if (f->setters.count(n)) d[py::str(n)] = record_detail::value_of(self, n);
          return d;
        },
        [build](const py::dict& d) { return build(d); }));
    // Deprecated dict-style access (see the top of the file).
    cls_.def("__getitem__", [f](const py::object& self, const py::object& key) {
      record_detail::deprecated(*f, "[" + py::repr(key).cast<std::string>() + "]",
                                "." + py::str(key).cast<std::string>());
      if (!record_detail::has_key(*f, self, key)) throw py::key_error(py::repr(key).cast<std::string>());
      return record_detail::value_of(self, key.cast<std::string>());
    });
    cls_.def("__contains__", [f](const py::object& self, const py::object& key) {
      record_detail::deprecated(*f, ": `key in result`", "hasattr(result, key) / `result.<key> is not None`");
      return record_detail::has_key(*f, self, key);
    });
    cls_.def("get", [f](const py::object& self, const py::object& key, const py::object& default_) {
      record_detail::deprecated(*f, ".get()", "getattr(result, key, default)");
      return record_detail::has_key(*f, self, key) ? record_detail::value_of(self, key.cast<std::string>())
                                                   : default_;
    }, py::arg("key"), py::arg("default") = py::none());
    cls_.def("keys", [f](const py::object& self) {
      record_detail::deprecated(*f, ".keys()", "type(result)._fields");
      py::list out;
      for (const auto& n : record_detail::present(*f, self)) out.append(py::str(n));
      return out;
    });
    cls_.def("items", [f](const py::object& self) {
      record_detail::deprecated(*f, ".items()", "result.to_dict().items()");
      py::list out;
      for (const auto& n : record_detail::present(*f, self))
        out.append(py::make_tuple(py::str(n), record_detail::value_of(self, n)));
      return out;
    });
    return cls_;
  }

 private:
  py::class_<T> cls_;
  std::shared_ptr<RecordFields> f_;
};

}  // namespace tessera_py
