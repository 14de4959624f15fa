// fleetca console: turns every element with data-copy="ID" into a button
// that copies the text of the element with that ID. The pages work
// without it: the buttons stay hidden.
"use strict";
document.querySelectorAll("[data-copy]").forEach(function (btn) {
  var target = document.getElementById(btn.getAttribute("data-copy"));
  if (!target || !navigator.clipboard) {
    return;
  }
  var label = btn.textContent;
  var timer = 0;
  btn.hidden = false;
  btn.addEventListener("click", function () {
    navigator.clipboard.writeText(target.textContent).then(function () {
      btn.textContent = "Copied";
      btn.classList.add("copied");
    }, function () {
      btn.textContent = "Copy failed: select and copy by hand";
    });
    clearTimeout(timer);
    timer = setTimeout(function () {
      btn.textContent = label;
      btn.classList.remove("copied");
    }, 2000);
  });
});
