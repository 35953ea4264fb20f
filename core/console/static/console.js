// The console's own script, for what htmx does not do: the live events tail (Server-Sent
// Events, pausable). Every page reads without it.
"use strict";

(function () {
  function liveTail() {
    var list = document.getElementById("events");
    if (!list || !window.EventSource) return;
    var button = document.getElementById("live-pause");
    var state = document.getElementById("live-state");
    var after = list.dataset.after;
    var source = null;

    function say(text) { if (state) state.textContent = text; }

    function open() {
      var url = list.dataset.stream + (list.dataset.stream.indexOf("?") < 0 ? "?" : "&") +
                "after=" + encodeURIComponent(after);
      source = new EventSource(url);
      source.addEventListener("open", function () { say("live"); });
      source.addEventListener("error", function () { say("reconnecting…"); });
      // The session ended (logout, expiry, a changed credential): stop, go log in again.
      source.addEventListener("ended", function () {
        source.close();
        window.location.reload();
      });
      source.addEventListener("message", function (event) {
        after = event.lastEventId || after;
        var holder = document.createElement("ol");
        holder.innerHTML = event.data;  // our own server's HTML, escaped by its templates
        var item = holder.firstElementChild;
        if (!item) return;
        item.classList.add("new");
        list.insertBefore(item, list.firstChild);
        var empty = document.getElementById("no-events");
        if (empty) empty.remove();
        if (window.htmx) window.htmx.process(item);
        while (list.children.length > 500) list.removeChild(list.lastChild);
      });
    }

    function close() { if (source) { source.close(); source = null; } }

    if (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        if (source) { close(); button.textContent = "Resume"; say("paused"); }
        else { open(); button.textContent = "Pause"; }
      });
    }
    open();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", liveTail);
  else liveTail();
})();
