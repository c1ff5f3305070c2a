// Small conveniences on top of forms that work without JavaScript:
// a group checkbox selects its members, choosing a product selects "only these",
// and the time zone follows the email language until someone picks one by hand.
(function () {
  "use strict";

  // A ticked group box is a choice of its own: the group, including components added to it
  // later. Ticking every member by hand does not tick it (that stays a choice of components);
  // unticking a member of a ticked group unticks it.
  function syncGroup(groupBox) {
    var members = document.querySelectorAll('[data-member-of="' + groupBox.dataset.group + '"]');
    var checked = 0;
    members.forEach(function (m) { if (m.checked) { checked += 1; } });
    if (checked < members.length) { groupBox.checked = false; }
    groupBox.indeterminate = !groupBox.checked && checked > 0;
  }

  function chooseSelectedScope() {
    var selected = document.getElementById("scope-selected");
    if (selected && !selected.disabled) { selected.checked = true; }
  }

  document.addEventListener("change", function (event) {
    var box = event.target;
    if (box.dataset && box.dataset.group) {
      document.querySelectorAll('[data-member-of="' + box.dataset.group + '"]').forEach(function (m) {
        m.checked = box.checked;
      });
      box.indeterminate = false;
      chooseSelectedScope();
    } else if (box.dataset && box.dataset.memberOf) {
      var group = document.querySelector('[data-group="' + box.dataset.memberOf + '"]');
      if (group) { syncGroup(group); }
      chooseSelectedScope();
    } else if (box.name === "components") {
      chooseSelectedScope();
    }
  });

  var zone = document.getElementById("timezone");
  if (zone) {
    var touched = false;
    zone.addEventListener("change", function () { touched = true; });
    document.querySelectorAll('input[name="language"]').forEach(function (radio) {
      radio.addEventListener("change", function () {
        var preferred = zone.dataset["default" + radio.value.charAt(0).toUpperCase() + radio.value.slice(1)];
        var current = zone.value;
        var untouched = !touched && (current === zone.dataset.defaultDe || current === zone.dataset.defaultEn);
        if (radio.checked && preferred && untouched) { zone.value = preferred; }
      });
    });
  }

  document.querySelectorAll("[data-group]").forEach(syncGroup);

  var summary = document.getElementById("error-summary");
  if (summary) { summary.focus(); }
})();

// Sign-up channel (issue 12): the target address field only shows for Slack, Teams and
// webhooks. Without JavaScript it always shows, with a hint saying when it is needed.
(function () {
  "use strict";
  var target = document.getElementById("target-field");
  var radios = document.querySelectorAll('input[name="channel"]');
  if (!target || !radios.length) { return; }
  function update() {
    var chosen = document.querySelector('input[name="channel"]:checked');
    target.hidden = !chosen || chosen.value === "email";
  }
  radios.forEach(function (radio) { radio.addEventListener("change", update); });
  update();
})();
