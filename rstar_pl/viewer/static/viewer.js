// rstar-pl tree viewer: light a rollout's path; hide unvisited nodes. No network.
(function () {
  "use strict";
  function clear(tree) {
    tree.querySelectorAll(".node.lit").forEach(function (n) { n.classList.remove("lit"); });
    tree.querySelectorAll("tr.rollout.selected").forEach(function (r) { r.classList.remove("selected"); });
  }
  function light(row) {
    var tree = row.closest("section.tree");
    var wasSelected = row.classList.contains("selected");
    clear(tree);
    if (wasSelected) { return; }
    row.classList.add("selected");
    row.dataset.path.split(" ").forEach(function (id) {
      var node = document.getElementById("t" + row.dataset.tree + "-n" + id);
      if (node) {
        node.classList.add("lit");
        for (var d = node.closest("details"); d; d = d.parentElement.closest("details")) { d.open = true; }
      }
    });
  }
  document.querySelectorAll("tr.rollout").forEach(function (row) {
    row.addEventListener("click", function () { light(row); });
    row.addEventListener("keydown", function (e) { if (e.key === "Enter") { light(row); } });
  });
  var only = document.getElementById("only-visited");
  if (only) {
    only.addEventListener("change", function () {
      document.body.classList.toggle("only-visited", only.checked);
    });
  }
})();
