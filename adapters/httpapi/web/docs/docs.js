// Starts Swagger UI on the server's own OpenAPI document. Kept in a file
// (not inline) so the page's policy can refuse every inline script.
"use strict";
window.addEventListener("DOMContentLoaded", function () {
  window.ui = SwaggerUIBundle({
    url: "/api/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // No call to the public validator: the page works offline and leaks
    // nothing about the deployment.
    validatorUrl: null,
    // The token stays in this page's memory, never in localStorage.
    persistAuthorization: false,
    displayOperationId: true,
    defaultModelsExpandDepth: 0,
    docExpansion: "list",
    tryItOutEnabled: false,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
