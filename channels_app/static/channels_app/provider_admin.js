/*
 * Provider config add page: show only the chosen provider's settings, and offer only the
 * providers that send on the chosen channel. Without JavaScript every fieldset stays
 * visible, each saying which provider it is for, and the server ignores the others.
 */
(function () {
  "use strict";

  function init() {
    const channel = document.getElementById("id_channel");
    const provider = document.getElementById("id_provider");
    const data = document.getElementById("provider-channels");
    if (!channel || !provider || !data) {
      return; // the change page: the provider is fixed and only its fieldset is there
    }
    const sendsOn = JSON.parse(data.textContent);

    function showChosen() {
      document.querySelectorAll("fieldset.provider-fields").forEach((fieldset) => {
        fieldset.hidden = !fieldset.classList.contains(`provider-${provider.value}`);
      });
    }

    function offerForChannel() {
      const chosen = channel.value;
      Array.from(provider.options).forEach((option) => {
        const fits = !chosen || !option.value || (sendsOn[option.value] || []).includes(chosen);
        option.hidden = !fits;
        option.disabled = !fits;
      });
      const current = provider.selectedOptions[0];
      if (!current || current.disabled) {
        const first = Array.from(provider.options).find((option) => !option.disabled);
        provider.value = first ? first.value : "";
      }
      showChosen();
    }

    channel.addEventListener("change", offerForChannel);
    provider.addEventListener("change", showChosen);
    offerForChannel();
  }

  document.addEventListener("DOMContentLoaded", init);
})();
