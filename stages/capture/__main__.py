from bus.stage import main
from stages.capture.stage import Capture

main(Capture)
