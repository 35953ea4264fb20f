// The console's own script: what htmx does not do. Pages work without it for reading.
"use strict";
