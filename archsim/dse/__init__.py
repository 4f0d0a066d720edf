"""archsim.dse"""
