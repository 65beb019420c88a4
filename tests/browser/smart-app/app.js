// A minimal SMART app using the fhirclient library (window.FHIR). Served by smart.mjs as
// /launch.html (EHR launch: iss and launch arrive in the URL), /standalone.html (standalone
// launch: the app knows the server) and /index.html (the redirect URI: finish, then read
// the patient in context).
const out = document.getElementById('result');
const cfg = await (await fetch('/config.json')).json();

try {
  switch (location.pathname) {
    case '/launch.html':
      await FHIR.oauth2.authorize({
        clientId: cfg.clientId,
        scope: 'openid fhirUser launch patient/*.rs',
        redirectUri: 'index.html',
      });
      break;
    case '/standalone.html':
      await FHIR.oauth2.authorize({
        clientId: cfg.clientId,
        scope: 'openid fhirUser launch/patient patient/*.rs',
        redirectUri: 'index.html',
        iss: cfg.iss,
      });
      break;
    default: {
      const client = await FHIR.oauth2.ready();
      const patient = await client.patient.read();
      out.textContent = JSON.stringify({
        contextPatient: client.patient.id,
        resourceType: patient.resourceType,
        id: patient.id,
        given: patient.name?.[0]?.given?.[0],
        fhirUser: client.getFhirUser(),
      });
      out.dataset.done = 'yes';
    }
  }
} catch (e) {
  out.textContent = `error: ${e && e.message || e}`;
  out.dataset.done = 'error';
}
