/* The weekly review: keyboard shortcuts, the 15-minute clock, printing the minutes.
   Everything here is a shortcut for something the page already does without JavaScript. */
(function () {
  "use strict";

  function typing(el) {
    return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  }

  function openDecision(key) {
    var panel = document.querySelector('#review-item details[data-shortcut="' + key + '"]');
    if (!panel) return false;
    panel.open = true;
    var first = panel.querySelector("select, input:not([type=hidden]), textarea, button[type=submit]");
    if (first) first.focus();
    panel.scrollIntoView({ block: "nearest" });
    return true;
  }

  function follow(id) {
    var link = document.getElementById(id);
    if (!link) return false;
    link.click(); // htmx swaps the item in place; without htmx the browser follows the link
    return true;
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) return;
    if (!document.getElementById("review-item")) return;
    if (typing(event.target)) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    var done = false;
    if (event.key === "j" || event.key === "ArrowRight") done = follow("review-next");
    else if (event.key === "k" || event.key === "ArrowLeft") done = follow("review-prev");
    else if (event.key.length === 1 && !event.shiftKey) done = openDecision(event.key.toLowerCase());
    if (done) event.preventDefault();
  });

  // Keep the current item visible in a long agenda, scrolling only the agenda's own column.
  function showCurrentInAgenda() {
    var side = document.querySelector(".review-side");
    var current = side && side.querySelector("li.current");
    if (!current) return;
    var top = current.getBoundingClientRect().top - side.getBoundingClientRect().top + side.scrollTop;
    if (top < side.scrollTop || top + current.offsetHeight > side.scrollTop + side.clientHeight) {
      side.scrollTop = top - side.clientHeight / 3;
    }
  }
  showCurrentInAgenda();

  // After a decision or a move, put focus on the new item's title for keyboard and screen readers.
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "review-item") {
      var title = document.getElementById("item-title");
      if (title) title.focus({ preventScroll: true });
      window.scrollTo({ top: 0 });
      showCurrentInAgenda();
    }
  });

  function clockWords(seconds) {
    if (seconds >= 86400) {
      var days = Math.floor(seconds / 86400);
      return days + (days === 1 ? " day" : " days");
    }
    var h = Math.floor(seconds / 3600);
    var m = Math.floor((seconds % 3600) / 60);
    var s = seconds % 60;
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return h ? h + ":" + pad(m) + ":" + pad(s) : m + ":" + pad(s);
  }

  var clock = document.getElementById("review-clock");
  if (clock) {
    // Counted from what the server measured, so the reader's own clock being off does not matter.
    var elapsed = parseInt(clock.dataset.elapsed, 10) || 0;
    var limit = parseInt(clock.dataset.limit, 10) || 900;
    var loaded = Date.now();
    var time = clock.querySelector(".clock-time");
    var note = clock.querySelector(".clock-note");
    var tick = function () {
      var seconds = elapsed + Math.floor((Date.now() - loaded) / 1000);
      time.textContent = clockWords(seconds);
      var over = seconds > limit;
      clock.classList.toggle("over", over);
      if (note) note.hidden = !over;
    };
    tick();
    window.setInterval(tick, 1000);
  }

  var print = document.querySelector("[data-print]");
  if (print) {
    print.hidden = false;
    print.addEventListener("click", function () { window.print(); });
  }
})();
