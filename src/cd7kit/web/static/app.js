// Draws every element of class "figure": its plotly figure is inline (data-figure) or fetched (data-src).
// Sets data-drawn="1" when drawn (the browser tests wait for it). Runs again after an HTMX swap.
(function () {
  function draw(el, fig) {
    Plotly.newPlot(el, fig.data, fig.layout, {responsive: true}).then(function () { el.dataset.drawn = "1"; });
  }
  function drawAll(root) {
    (root || document).querySelectorAll(".figure:not([data-drawn])").forEach(function (el) {
      if (el.dataset.figure) { draw(el, JSON.parse(el.dataset.figure)); }
      else if (el.dataset.src) {
        fetch(el.dataset.src, {credentials: "same-origin"})
          .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
          .then(function (fig) { draw(el, fig); })
          .catch(function (e) { el.textContent = "The figure could not be loaded (" + e.message + ")."; });
      }
    });
  }
  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSwap", function (ev) { drawAll(ev.target); });
})();
