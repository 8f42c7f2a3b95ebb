// any_drafter: a drafter chosen at run time (a CLI picking a method by name). The only type erasure
// in specdec: one virtual call per draft/observe, next to a forward step that costs milliseconds.
// The hot loop stays a template; any_drafter itself satisfies the drafter concept.
#pragma once

#include <specdec/concepts/drafter.hpp>

#include <memory>
#include <span>
#include <type_traits>
#include <utility>

namespace specdec {

class any_drafter {
 public:
  template <drafter D>
    requires(!std::is_same_v<std::decay_t<D>, any_drafter>)
  explicit any_drafter(D d) : self_(std::make_unique<holder<D>>(std::move(d))) {}

  void begin(request_id id, std::span<const token_id> prompt) { self_->begin(id, prompt); }
  draft_tree draft(request_id id, const draft_request& r) { return self_->draft(id, r); }
  void observe(request_id id, const step_outcome& o) { self_->observe(id, o); }
  void end(request_id id) { self_->end(id); }

  // The wrapped drafter, or nullptr when it is not a D.
  template <drafter D>
  D* target() noexcept {
    auto* h = dynamic_cast<holder<D>*>(self_.get());
    return h != nullptr ? &h->d : nullptr;
  }

 private:
  struct base {
    virtual ~base() = default;
    virtual void begin(request_id, std::span<const token_id>) = 0;
    virtual draft_tree draft(request_id, const draft_request&) = 0;
    virtual void observe(request_id, const step_outcome&) = 0;
    virtual void end(request_id) = 0;
  };
  template <class D>
  struct holder final : base {
    explicit holder(D x) : d(std::move(x)) {}
    void begin(request_id id, std::span<const token_id> p) override { d.begin(id, p); }
    draft_tree draft(request_id id, const draft_request& r) override { return d.draft(id, r); }
    void observe(request_id id, const step_outcome& o) override { d.observe(id, o); }
    void end(request_id id) override { d.end(id); }
    D d;
  };
  std::unique_ptr<base> self_;
};

}  // namespace specdec
