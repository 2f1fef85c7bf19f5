// Quick exit: Escape (or the button) replaces this page in the history with a neutral one,
// so the Back button does not return here. Works as a plain link without JavaScript.
(function () {
  var link = document.getElementById("quick-exit");
  if (!link) return;
  var target = link.getAttribute("data-exit-url");
  function leave(event) {
    if (event) event.preventDefault();
    document.body.innerHTML = "";
    window.location.replace(target);
  }
  link.addEventListener("click", leave);
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") leave(event);
  });
})();
