from bus.stage import main
from stages.router.stage import Router

main(Router)
