from bus.stage import main
from stages.asr.stage import Asr

main(Asr)
