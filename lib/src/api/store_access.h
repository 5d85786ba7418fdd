// StoreAccess: the way from a public Store to what it holds (Store::Impl,
// engine/store_impl.h), a friend of Store. Only api/ (where the public
// functions are defined, each handing the Impl to an engine or dist/
// function) and white-box tests use it; the layers below take a
// Store::Impl& and never see a Store.
#pragma once

#include "engine/store_impl.h"
#include "tessera/store.h"

namespace tessera {

struct StoreAccess {
  static Store::Impl& impl(const Store& store) { return *store.impl_; }
};

}  // namespace tessera
