"""One module per group of /sdapi/v1 routes; each builds an APIRouter over the shared ApiContext."""
